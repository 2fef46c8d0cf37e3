//! What every client of a remote API here shares, so none can be tricked: no
//! redirects (a 3xx is an error naming where it pointed: a followed redirect turns
//! a POST into a GET that "succeeds", and would carry the credential header to
//! another host), answers read up to a size limit, credentials never sent over
//! plain `http://` except to loopback, URLs written down without credentials.

use std::time::Duration;

/// The largest answer a client reads (GraphQL documents, Gorse replies); bulk
/// results are downloaded to files, streamed, and not bound by it.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// A client that follows no redirect.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Refuses to send a credential to `url` over plain http unless the host is on
/// this machine (a test server, a local proxy).
pub fn check_credential_transport(url: &str, what: &str) -> anyhow::Result<()> {
    let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("{} is not a URL: {e}", without_credentials(url)))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if parsed.scheme() == "http" && !loopback {
        anyhow::bail!("refusing to send the {what} over plain http to {}: use https (plain http is only for loopback)", without_credentials(url));
    }
    Ok(())
}

/// What a redirect answer says, for an error: status and target.
pub fn redirect_error(response: &reqwest::Response) -> Option<String> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("nowhere");
    Some(format!("answered {} redirecting to {} (redirects are not followed)", response.status().as_u16(), without_credentials(location)))
}

/// Why an answer's body could not be read.
pub enum BodyError {
    /// The connection failed while reading (worth another try).
    Transport(String),
    /// Larger than [`MAX_ANSWER_BYTES`] (not worth another try).
    TooLarge,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Transport(why) => f.write_str(why),
            BodyError::TooLarge => write!(f, "the answer is larger than {} MB", MAX_ANSWER_BYTES >> 20),
        }
    }
}

/// The body of an answer as text, up to [`MAX_ANSWER_BYTES`] (memory stays
/// bounded whatever the server sends).
pub async fn read_limited(mut response: reqwest::Response) -> Result<String, BodyError> {
    if response.content_length().is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| BodyError::Transport(crate::retry::describe(&e)))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The URL as it may be written down: without a user or password in it.
pub fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.as_str().trim_end_matches('/').to_string()
        }
        Err(_) => url.trim_end_matches('/').to_string(),
    }
}
