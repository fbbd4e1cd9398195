//! A browser for tests of server-rendered pages: it keeps cookies by hand
//! (every attribute but the name and value ignored, a `Max-Age=0` or empty
//! value removing one) and follows redirects one at a time, so each step of a
//! sign-in can be looked at.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

/// What one request answered.
pub struct Page {
    /// The status.
    pub status: StatusCode,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// Every header.
    pub headers: reqwest::header::HeaderMap,
    /// The body as text.
    pub body: String,
}

/// Cookies and a client that follows no redirect on its own.
pub struct Browser {
    http: reqwest::Client,
    /// The cookies held, by name.
    pub cookies: BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with no cookie.
    pub fn new() -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
        Browser { http, cookies: BTreeMap::new() }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let request = if cookie.is_empty() { request } else { request.header(COOKIE, cookie) };
        let response = request.send().await.expect("the server answers");
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().expect("a text cookie");
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || attributes.to_ascii_lowercase().contains("max-age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status(),
            location: response.headers().get(LOCATION).map(|l| l.to_str().expect("a text location").to_owned()),
            headers: response.headers().clone(),
            body: response.text().await.expect("a text body"),
        }
    }

    /// A GET.
    pub async fn get(&mut self, url: &str) -> Page {
        self.send(self.http.get(url)).await
    }

    /// A POST of a form.
    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        self.send(self.http.post(url).form(form)).await
    }

    /// GETs `url` and follows redirects to the end (a relative one against `base`).
    pub async fn open(&mut self, base: &str, url: &str) -> Page {
        let mut page = self.get(url).await;
        for _ in 0..8 {
            let Some(next) = page.location.clone().filter(|_| page.status.is_redirection()) else { break };
            let next = if next.starts_with('/') { format!("{base}{next}") } else { next };
            page = self.get(&next).await;
        }
        page
    }
}

/// The value of form field `name` (`name="..." value="..."`) in a page.
pub fn field(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = body.find(&marker).unwrap_or_else(|| panic!("no field {name} in {body}"));
    let rest = &body[at + marker.len()..];
    rest[..rest.find('"').expect("a closing quote")].to_owned()
}

impl Browser {
    /// Opens the portal's request form at `base` and submits it with `fields`
    /// (the form's own CSRF token and request id added).
    pub async fn submit_request(&mut self, base: &str, fields: &[(&str, &str)]) -> Page {
        let form = self.get(&format!("{base}/requests/new")).await;
        assert_eq!(form.status, StatusCode::OK, "the request form: {}", form.body);
        let (csrf, id) = (field(&form.body, "csrf"), field(&form.body, "id"));
        let mut all = vec![("csrf", csrf.as_str()), ("id", id.as_str())];
        all.extend_from_slice(fields);
        self.post(&format!("{base}/requests"), &all).await
    }
}
