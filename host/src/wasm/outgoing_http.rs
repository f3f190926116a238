//! Outgoing HTTP from guests: denied, unless the route lists the
//! destination. A handler that may call one API must not be able to reach
//! anything else on the edge node's network (SSRF), so the allowance is an
//! exact list of `host:port` authorities, nothing wider.

use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The authorities (`host:port`, lowercase) a route's guests may call.
#[derive(Clone, Debug, Default)]
pub struct OutgoingHttp {
    allowed: Arc<[String]>,
}

impl OutgoingHttp {
    /// Allows exactly these authorities; each must be `host:port`.
    pub fn allow(authorities: &[String]) -> Result<Self, String> {
        let allowed = authorities
            .iter()
            .map(|authority| parse_authority(authority))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            allowed: allowed.into(),
        })
    }

    fn permits(&self, uri: &http::Uri) -> bool {
        let Some(authority) = uri.authority() else {
            return false;
        };
        let port = authority.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        let wanted = format!("{}:{port}", authority.host().to_ascii_lowercase());
        self.allowed.contains(&wanted)
    }
}

/// `host:port` with an explicit port, normalized to lowercase.
fn parse_authority(text: &str) -> Result<String, String> {
    let authority: http::uri::Authority = text
        .parse()
        .map_err(|_| format!("{text:?} is not a host:port"))?;
    match authority.port_u16() {
        Some(port) if authority.as_str().len() == text.len() && !text.contains('@') => {
            Ok(format!("{}:{port}", authority.host().to_ascii_lowercase()))
        }
        _ => Err(format!(
            "{text:?} must be host:port, e.g. \"api.example.com:443\""
        )),
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutgoingHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        if !self.permits(request.uri()) {
            return Box::new(std::future::ready(Err(Error::HttpRequestDenied)));
        }
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_authorities_are_permitted() {
        let outgoing =
            OutgoingHttp::allow(&["API.example.com:443".into(), "10.0.0.1:8080".into()]).unwrap();
        let permits = |uri: &str| outgoing.permits(&uri.parse().unwrap());
        assert!(permits("https://api.example.com/v1"));
        assert!(permits("https://api.EXAMPLE.com:443/v1"));
        assert!(permits("http://10.0.0.1:8080/"));
        assert!(!permits("http://api.example.com/"), "port 80 is not listed");
        assert!(!permits("https://evil.example.com/"));
        assert!(!permits("http://10.0.0.1:8081/"));
        assert!(!permits("/relative"));
        assert!(!OutgoingHttp::default().permits(&"https://api.example.com/".parse().unwrap()));
    }

    #[test]
    fn entries_must_be_plain_host_and_port() {
        for bad in [
            "api.example.com",
            "user@api.example.com:443",
            "https://x:1",
            "",
            "x:99999",
        ] {
            assert!(OutgoingHttp::allow(&[bad.into()]).is_err(), "{bad:?}");
        }
    }
}
