//! The connection to one Hangar server: its base URL, the bearer token, URL building from
//! path segments (each one percent-encoded, so names and file paths never change the route),
//! and the mapping of problem+json answers to `ClientError`.

use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Remote;
use super::error::{ClientError, Result, chain};

/// At most this much of an error body is read: enough for any problem+json.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    pub fn new(remote: &Remote) -> Result<Self> {
        let base = Url::parse(remote.url.trim())
            .map_err(|e| ClientError::Usage(format!("--url / HANGAR_URL {:?} is not a URL: {e}", remote.url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Usage(format!(
                "--url / HANGAR_URL uses {}:; give the server as http(s)://HOST:PORT",
                base.scheme()
            )));
        }
        let token = remote.token.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        if let Some(token) = &token
            && reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_err()
        {
            return Err(ClientError::Usage("--token / HANGAR_TOKEN contains characters a header cannot carry".into()));
        }
        crate::tls::install_provider();
        let mut builder = reqwest::Client::builder().user_agent(concat!("hangar/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &remote.ca_cert {
            let certs = crate::tls::ca_certificates(path)
                .map_err(|e| ClientError::Usage(format!("--ca-cert / HANGAR_CA_CERT {}: {e}", path.display())))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| ClientError::failed("cannot set up the HTTP client", &e))?;
        Ok(Self { http, base, token })
    }

    /// The URL of `segments` under the base URL (which may itself have a path prefix).
    pub fn url<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> Url {
        let mut url = self.base.clone();
        // http URLs always have a path; `new` accepts no other scheme.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// A request with the token.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends and turns any non-success answer into the matching error.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.problem(response).await)
    }

    /// Reads a non-success answer: its problem+json `detail`, else its status.
    pub async fn problem(&self, response: Response) -> ClientError {
        let status = response.status();
        let mut body = Vec::new();
        let mut response = response;
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_ERROR_BODY {
                break;
            }
        }
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
            .filter(|d| !d.is_empty());
        let detail = match detail {
            Some(detail) => detail,
            None if status == StatusCode::UNAUTHORIZED => {
                "the server wants a token: pass --token or set HANGAR_TOKEN".to_owned()
            }
            None if status == StatusCode::NOT_FOUND => format!("{} was not found on the server", response.url().path()),
            None => format!("the server answered {status} to {}", response.url().path()),
        };
        ClientError::from_status(status, detail)
    }

    fn unreachable(&self, err: &reqwest::Error) -> ClientError {
        if let Some(cert) = crate::tls::certificate_problem(err) {
            return ClientError::Failed(format!(
                "the TLS certificate of {} is not trusted ({cert}); if the server uses a private CA, \
                 pass its certificate with --ca-cert / HANGAR_CA_CERT",
                self.base
            ));
        }
        let what = match err.url() {
            Some(url) => format!("request to {url} failed"),
            None => format!("request to {} failed", self.base),
        };
        ClientError::Failed(format!("{what}: {}", chain(err)))
    }

    pub async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        self.json(self.request(Method::GET, self.url(segments.iter().copied()))).await
    }

    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(&self, segments: &[&str], body: &B) -> Result<T> {
        self.json(self.request(Method::POST, self.url(segments.iter().copied())).json(body)).await
    }

    pub async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(&self, segments: &[&str], body: &B) -> Result<T> {
        self.json(self.request(Method::PUT, self.url(segments.iter().copied())).json(body)).await
    }

    pub async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(&self, segments: &[&str], body: &B) -> Result<T> {
        self.json(self.request(Method::PATCH, self.url(segments.iter().copied())).json(body)).await
    }

    pub async fn delete(&self, segments: &[&str]) -> Result<()> {
        self.send(self.request(Method::DELETE, self.url(segments.iter().copied()))).await.map(drop)
    }

    /// Sends and reads a JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let response = self.send(request).await?;
        let url = response.url().clone();
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Failed(format!("the server's answer to {} is not what this client expects: {e}", url.path()))
        })
    }

    /// `GET` of every page of a list endpoint (`items` + `next_cursor`).
    pub async fn get_all<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<Vec<T>> {
        #[derive(serde::Deserialize)]
        struct Page<T> {
            items: Vec<T>,
            #[serde(default)]
            next_cursor: Option<String>,
        }
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.url(segments.iter().copied());
            url.query_pairs_mut().append_pair("limit", "500");
            if let Some(cursor) = &cursor {
                url.query_pairs_mut().append_pair("cursor", cursor);
            }
            let page: Page<T> = self.json(self.request(Method::GET, url)).await?;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
    }
}

/// Path segments of a model's URL: `team/name` is two segments, as the routes expect.
pub fn model_segments(model: &str) -> impl Iterator<Item = &str> {
    model.split('/')
}

/// `["api", "v1", "models", <model>, tail…]`.
pub fn model_path<'a>(model: &'a str, tail: &[&'a str]) -> Vec<&'a str> {
    let mut segments = vec!["api", "v1", "models"];
    segments.extend(model_segments(model));
    segments.extend_from_slice(tail);
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Result<Client> {
        Client::new(&Remote { url: url.into(), token: Some("hgr_x".into()), json: false, ca_cert: None })
    }

    #[test]
    fn segments_are_encoded_one_by_one_under_the_base_path() {
        let c = client("http://h:1/prefix/").expect("client");
        let url = c.url(model_path("team/m", &["versions", "1+x", "files", "a b", "c?#%.bin"]));
        assert_eq!(url.as_str(), "http://h:1/prefix/api/v1/models/team/m/versions/1+x/files/a%20b/c%3F%23%25.bin");
        let c = client("http://h:1").expect("client");
        assert_eq!(c.url(["api", "v1", "me"]).as_str(), "http://h:1/api/v1/me");
    }

    #[test]
    fn only_http_and_https_urls_are_accepted() {
        assert!(client("https://h").is_ok());
        for bad in ["ftp://h", "not a url", "h:8080"] {
            assert!(matches!(client(bad), Err(ClientError::Usage(_))), "{bad}");
        }
    }
}
