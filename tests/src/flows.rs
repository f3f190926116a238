//! The user flows that every session backend must carry end to end: the
//! e2e tests run them on the embedded store, the Aerospike tests on the
//! Aerospike backend.

use std::path::Path;
use std::time::Duration;

use crate::{BASE_CONFIG, Host, guest};

/// The host's session cookies: secure by default, hence the `__Host-` prefix.
pub const COUNTER_COOKIE: &str = "__Host-sid";
/// The shop's route names its own cookie, so that the counter's does not clash.
pub const SHOP_COOKIE: &str = "__Host-shop_sid";

/// The routes the flows below visit: the counter app at `/counter`, the
/// login/cart app at `/shop`, in whichever language they were written.
/// `route_settings` (TOML keys) go into both routes.
pub fn app_routes(counter: &Path, cart: &Path, counter_ttl: &str, route_settings: &str) -> String {
    format!(
        r#"
[[routes]]
prefix = "/counter"
component = "{counter}"
namespace = "counter"
default_ttl = "{counter_ttl}"
{route_settings}

[[routes]]
prefix = "/shop"
component = "{cart}"
namespace = "shop"
{route_settings}
[routes.cookie]
name = "shop_sid"
"#,
        counter = counter.display(),
        cart = cart.display(),
    )
}

/// The example guests plus the faulty test guest; `store` is TOML added
/// to the config (empty for the embedded store).
pub fn demo_config(counter_ttl: &str, store: &str) -> String {
    format!(
        r#"
{BASE_CONFIG}
{store}
{apps}
[[routes]]
prefix = "/faulty"
component = "{faulty}"
namespace = "faulty"
timeout = "1s"
max_memory_mib = 32

[[routes]]
prefix = "/no-sessions"
component = "{faulty}"

[[routes]]
prefix = "/short-life"
component = "{counter}"
namespace = "short-life"
max_lifetime = "2s"
[routes.cookie]
name = "short"

[[routes]]
prefix = "/slide"
component = "{counter}"
namespace = "slide"
default_ttl = "3s"
refresh_fraction = 1.0
[routes.cookie]
name = "slide"

[[routes]]
prefix = "/no-slide"
component = "{counter}"
namespace = "no-slide"
default_ttl = "3s"
refresh_fraction = 0.0
[routes.cookie]
name = "no_slide"

# Two tenants running the same guest, each in its own namespace.
[[routes]]
prefix = "/tenant-a"
component = "{faulty}"
namespace = "tenant-a"
max_ttl = "1d"

[[routes]]
prefix = "/tenant-b"
component = "{faulty}"
namespace = "tenant-b"

[[routes]]
prefix = "/limited"
component = "{faulty}"
max_request_bytes = 1024
max_response_bytes = 4096
max_concurrency = 2
"#,
        apps = app_routes(&guest("counter"), &guest("cart"), counter_ttl, ""),
        counter = guest("counter").display(),
        faulty = guest("faulty").display(),
    )
}

pub fn counter_counts_each_visitor_separately(host: &Host) {
    let mut alice = host.client();
    let first = alice.get("/counter");
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.json()["count"], 1);
    let cookie = first
        .header("set-cookie")
        .expect("a new visitor gets a cookie");
    assert!(cookie.starts_with("__Host-sid="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    for absent in ["Domain", "Max-Age", "Expires"] {
        assert!(
            !cookie.contains(absent),
            "{cookie} has {absent}: it must die with the browser session"
        );
    }
    let sid = alice.cookie(COUNTER_COOKIE).expect("sid cookie").to_owned();
    assert_eq!(sid.len(), 22, "128-bit base64url id");

    assert_eq!(alice.get("/counter").json()["count"], 2);
    let third = alice.get("/counter/any/sub/path");
    assert_eq!(third.json()["count"], 3);
    assert!(
        third.header("set-cookie").is_none(),
        "a known visitor keeps the cookie"
    );

    let mut bob = host.client();
    assert_eq!(bob.get("/counter").json()["count"], 1);
    assert_ne!(bob.cookie(COUNTER_COOKIE), alice.cookie(COUNTER_COOKIE));
    assert_eq!(alice.get("/counter").json()["count"], 4);

    // An id the host never issued starts a fresh session; it is never adopted.
    let mut forger = host.client();
    forger.set_cookie(COUNTER_COOKIE, Some("AAAAAAAAAAAAAAAAAAAAAA"));
    assert_eq!(forger.get("/counter").json()["count"], 1);
    assert_ne!(
        forger.cookie(COUNTER_COOKIE),
        Some("AAAAAAAAAAAAAAAAAAAAAA")
    );
    let mut garbage = host.client();
    garbage.set_cookie(COUNTER_COOKIE, Some("not-an-id-at-all"));
    assert_eq!(garbage.get("/counter").json()["count"], 1);
}

pub fn login_cart_logout(host: &Host) {
    let mut shopper = host.client();
    assert_eq!(shopper.get("/shop/cart").status, 401, "no session yet");

    let login = shopper.post("/shop/login", r#"{"user":"ada"}"#);
    assert_eq!(login.status, 200, "{login:?}");
    let first_sid = shopper
        .cookie(SHOP_COOKIE)
        .expect("login sets the cookie")
        .to_owned();

    assert_eq!(
        shopper
            .post("/shop/cart/items", r#"{"sku":"apple","qty":2}"#)
            .json()["qty"],
        2
    );
    assert_eq!(
        shopper
            .post("/shop/cart/items", r#"{"sku":"apple","qty":3}"#)
            .json()["qty"],
        5
    );
    assert_eq!(
        shopper
            .post("/shop/cart/items", r#"{"sku":"pear","qty":1}"#)
            .json()["qty"],
        1
    );
    let cart = shopper.get("/shop/cart").json();
    assert_eq!(cart["user"], "ada");
    assert_eq!(cart["items"], serde_json::json!({ "apple": 5, "pear": 1 }));

    assert_eq!(shopper.delete("/shop/cart/items/pear").status, 200);
    assert_eq!(shopper.delete("/shop/cart/items/pear").status, 404);
    assert_eq!(
        shopper.get("/shop/cart").json()["items"],
        serde_json::json!({ "apple": 5 })
    );

    // Logging in again never keeps the old id (session fixation).
    shopper.post("/shop/login", r#"{"user":"ada"}"#);
    assert_ne!(shopper.cookie(SHOP_COOKIE), Some(first_sid.as_str()));
    let mut stale = host.client();
    stale.set_cookie(SHOP_COOKIE, Some(&first_sid));
    assert_eq!(
        stale.get("/shop/cart").status,
        401,
        "the pre-login id is dead"
    );

    let session = shopper.cookie(SHOP_COOKIE).expect("logged in").to_owned();
    let logout = shopper.post("/shop/logout", "");
    assert_eq!(logout.status, 200);
    assert!(
        logout.header("set-cookie").unwrap().contains("Max-Age=0"),
        "the cookie is expired"
    );
    assert_eq!(shopper.cookie(SHOP_COOKIE), None);
    let mut after = host.client();
    after.set_cookie(SHOP_COOKIE, Some(&session));
    assert_eq!(
        after.get("/shop/cart").status,
        401,
        "the session is gone server-side"
    );
}

pub fn concurrent_visits_lose_no_increment(host: &Host) {
    const THREADS: usize = 8;
    const VISITS: usize = 40;
    let mut client = host.client();
    assert_eq!(client.get("/counter").json()["count"], 1);
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let mut tab = client.clone();
            std::thread::spawn(move || {
                for _ in 0..VISITS {
                    assert_eq!(tab.get("/counter").status, 200);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(
        client.get("/counter").json()["count"],
        (1 + THREADS * VISITS + 1) as u64
    );
}

/// The counter route's `default_ttl` for [`sessions_expire`]: long enough
/// that a loaded machine cannot stall two consecutive visits past it.
pub const EXPIRY_TTL: Duration = Duration::from_secs(3);

/// [`EXPIRY_TTL`] as the config writes it.
pub fn expiry_ttl_setting() -> String {
    format!("{}s", EXPIRY_TTL.as_secs())
}

/// Needs a host whose counter route has `default_ttl = expiry_ttl_setting()`.
pub fn sessions_expire(host: &Host) {
    let mut client = host.client();
    assert_eq!(client.get("/counter").json()["count"], 1);
    assert_eq!(client.get("/counter").json()["count"], 2);
    let last_visit = std::time::Instant::now();
    let sid = client.cookie(COUNTER_COOKIE).map(str::to_owned);
    std::thread::sleep(
        (last_visit + EXPIRY_TTL + Duration::from_millis(500)) - std::time::Instant::now(),
    );
    assert_eq!(
        client.get("/counter").json()["count"],
        1,
        "the expired session is gone"
    );
    assert_ne!(
        client.cookie(COUNTER_COOKIE).map(str::to_owned),
        sid,
        "and a new one was issued"
    );
}
