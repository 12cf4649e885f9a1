-- Webhook URLs may no longer hold credentials (user:password@): they were stored and shown
-- back. Drop them from URLs registered before; such a receiver now answers 401 or 403, seen
-- in the delivery log, and should check X-Hangar-Signature instead. URLs are stored as the
-- url crate writes them, `http://` then the authority up to the first `/`, with any `@` in
-- the user or password percent-encoded, so the only `@` before that `/` ends the userinfo.
UPDATE webhooks
   SET url = 'http://' || substr(url, 8 + instr(substr(url, 8), '@'))
 WHERE url LIKE 'http://%'
   AND instr(substr(url, 8), '@') > 0
   AND instr(substr(url, 8), '@') < instr(substr(url, 8), '/');
