//! OAuth2 client credentials (RFC 6749 section 4.4): fetches an access token from the token endpoint, keeps it
//! until shortly before it expires (on herald's clock), and forgets it when the destination refuses it, so the
//! next request fetches a new one. One fetch at a time: concurrent sends wait for it and share its token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde::Deserialize;

use crate::clock::Clock;
use crate::config::{OAuth2Settings, Secret};
use crate::sinks::{SinkError, http};

/// A token is refreshed this long before it expires (half its lifetime when that is shorter).
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// An access token and when it stops being used.
#[derive(Debug, Clone)]
struct Token {
    value: Secret,
    /// `None` when the endpoint gave no `expires_in`: used until refused.
    refresh_at: Option<DateTime<Utc>>,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<f64>,
}

/// Where an integration's OAuth2 tokens come from.
#[derive(Debug)]
pub struct TokenSource {
    settings: OAuth2Settings,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    cached: Mutex<Option<Token>>,
    /// Held while a token is fetched.
    fetching: tokio::sync::Mutex<()>,
}

impl TokenSource {
    pub fn new(settings: OAuth2Settings, client: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        TokenSource {
            settings,
            client,
            clock,
            cached: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The client secret and the token in use, to redact.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![self.settings.client_secret.expose().to_owned()];
        if let Some(token) = self.current() {
            secrets.push(token.value.expose().to_owned());
        }
        secrets
    }

    fn current(&self) -> Option<Token> {
        self.cached.lock().ok().and_then(|cached| cached.clone())
    }

    fn usable(&self) -> Option<Secret> {
        let token = self.current()?;
        let now = self.clock.now();
        match token.refresh_at {
            Some(at) if now >= at => None,
            _ => Some(token.value),
        }
    }

    /// A token to send: the cached one while it is fresh, else a new one from the endpoint.
    pub async fn token(&self) -> Result<Secret, SinkError> {
        if let Some(token) = self.usable() {
            return Ok(token);
        }
        let _one_fetch = self.fetching.lock().await;
        // Another send may have fetched one while this one waited.
        if let Some(token) = self.usable() {
            return Ok(token);
        }
        let token = self.fetch().await?;
        let value = token.value.clone();
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some(token);
        }
        Ok(value)
    }

    /// Forgets `refused` (the destination answered 401 to it), unless a newer token already replaced it.
    pub fn forget(&self, refused: &Secret) {
        if let Ok(mut cached) = self.cached.lock()
            && cached.as_ref().is_some_and(|token| &token.value == refused)
        {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<Token, SinkError> {
        let settings = &self.settings;
        let secrets = [settings.client_secret.expose()];
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        let scope = settings.scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        form.extend(
            settings
                .endpoint_params
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        // RFC 6749 section 2.3.1: the id and secret are form-encoded before they are joined and encoded.
        let credentials = format!(
            "{}:{}",
            form_encode(&settings.client_id),
            form_encode(settings.client_secret.expose())
        );
        let mut authorization = HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        ))
        .map_err(|_| {
            SinkError::permanent("the OAuth2 client credentials are not a valid HTTP header value")
        })?;
        authorization.set_sensitive(true);
        let response = self
            .client
            .post(&settings.token_url)
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|error| prefix(http::transport_error(error, &secrets)))?;
        let now = self.clock.now();
        let answer = http::Answer::read(response, now).await;
        if !answer.status.is_success() {
            return Err(prefix(answer.classify(&secrets).err().unwrap_or_else(
                || SinkError::retryable("the OAuth2 token endpoint answered without success"),
            )));
        }
        let parsed: TokenAnswer =
            serde_json::from_str(&answer.body).map_err(|error| SinkError::Retryable {
                reason: format!("the OAuth2 token endpoint's answer is not a token: {error}"),
                response: Some(answer.response(&secrets)),
            })?;
        if let Some(kind) = parsed.token_type.as_deref()
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(SinkError::permanent(format!(
                "the OAuth2 token endpoint gave a {kind:?} token; only bearer tokens are supported"
            )));
        }
        if parsed.access_token.is_empty() {
            return Err(SinkError::retryable(
                "the OAuth2 token endpoint gave an empty access_token",
            ));
        }
        let refresh_at = parsed
            .expires_in
            .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
            .map(|lifetime| {
                let margin = EXPIRY_MARGIN.min(lifetime / 2);
                let usable = chrono::Duration::from_std(lifetime - margin)
                    .unwrap_or(chrono::Duration::zero());
                now + usable
            });
        Ok(Token {
            value: Secret::new(parsed.access_token),
            refresh_at,
        })
    }
}

/// Names the token endpoint in a failure's reason.
fn prefix(error: SinkError) -> SinkError {
    match error {
        SinkError::Retryable { reason, response } => SinkError::Retryable {
            reason: format!("OAuth2 token request failed: {reason}"),
            response,
        },
        SinkError::Permanent { reason, response } => SinkError::Permanent {
            reason: format!("OAuth2 token request failed: {reason}"),
            response,
        },
        limited @ SinkError::RateLimited { .. } => limited,
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_reserved_characters() {
        assert_eq!(form_encode("a b+c/d:é"), "a+b%2Bc%2Fd%3A%C3%A9");
        assert_eq!(form_encode("Plain-id_1.x*"), "Plain-id_1.x*");
    }
}
