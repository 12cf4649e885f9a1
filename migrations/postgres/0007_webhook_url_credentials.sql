-- As migrations/0007_webhook_url_credentials.sql: drops credentials (user:password@) from
-- webhook URLs. A database made by these migrations never held such a URL; this keeps the
-- two histories the same.
UPDATE webhooks
   SET url = 'http://' || substr(url, 8 + strpos(substr(url, 8), '@'))
 WHERE url LIKE 'http://%'
   AND strpos(substr(url, 8), '@') > 0
   AND strpos(substr(url, 8), '@') < strpos(substr(url, 8), '/');
