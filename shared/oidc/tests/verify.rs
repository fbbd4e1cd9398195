//! The verifier against a fake identity provider over HTTP: what it accepts,
//! every forgery it refuses, and key rotation.

use std::time::Duration;

use chrono::Utc;
use grantwarden_core::identity::Voucher;
use grantwarden_oidc::{Settings, TokenRefusal, Verifier};
use grantwarden_testkit::oidc::{CLIENT_ID, FakeIdp};
use serde_json::json;

async fn verifier(idp: &FakeIdp, min_refresh: Duration) -> Verifier {
    let mut settings = Settings::new(&idp.issuer, CLIENT_ID);
    settings.min_refresh = min_refresh;
    Verifier::discover(settings).await.expect("the fake provider answers")
}

#[tokio::test]
async fn a_token_of_the_issuer_names_the_person_with_their_groups_and_sign_in_time() {
    let idp = FakeIdp::start().await;
    let v = verifier(&idp, Duration::ZERO).await;
    let signed_in = Utc::now() - chrono::Duration::minutes(3);
    let token = idp.token("Alice@Example.com").groups(&["db-security", "eng"]).signed_in_at(signed_in).signed();
    let ok = v.verify(&token, Utc::now(), None).await.unwrap();
    assert_eq!(ok.actor.id, "alice@example.com");
    assert_eq!(ok.actor.groups.iter().map(String::as_str).collect::<Vec<_>>(), ["db-security", "eng"]);
    assert_eq!(ok.actor.signed_in_at.map(|t| t.timestamp()), Some(signed_in.timestamp()));
    assert_eq!(ok.actor.vouched_by, Voucher::Token { issuer: idp.issuer.clone() });
    assert_eq!(ok.subject, "sub-Alice@Example.com");
    // an ES256 key of the same issuer is as good
    let ec = idp.token("bob@example.com").with_ec_key().signed();
    assert_eq!(v.verify(&ec, Utc::now(), None).await.unwrap().actor.id, "bob@example.com");
    // the nonce of a sign-in is checked when the caller expects one
    let with_nonce = idp.token("alice@example.com").claim("nonce", json!("n-1")).signed();
    assert!(v.verify(&with_nonce, Utc::now(), Some("n-1")).await.is_ok());
    assert!(matches!(v.verify(&with_nonce, Utc::now(), Some("n-2")).await, Err(TokenRefusal::Nonce)));
    let without = idp.token("alice@example.com").signed();
    assert!(matches!(v.verify(&without, Utc::now(), Some("n-1")).await, Err(TokenRefusal::Nonce)));
}

#[tokio::test]
async fn forged_tokens_are_refused_each_for_its_reason() {
    let idp = FakeIdp::start().await;
    let v = verifier(&idp, Duration::from_secs(3600)).await;
    let now = Utc::now();
    let refused = |token: String| {
        let v = &v;
        async move { v.verify(&token, now, None).await.expect_err("a forged token is refused") }
    };

    let none = refused(idp.token("ciso@example.com").unsigned()).await;
    assert!(matches!(&none, TokenRefusal::Algorithm(a) if a == "none"), "{none}");
    // the public key is public: an HMAC over it proves nothing
    let modulus = idp.public_jwk()["n"].as_str().unwrap().to_owned();
    let hmac = refused(idp.token("ciso@example.com").signed_hmac(modulus.as_bytes())).await;
    assert!(matches!(hmac, TokenRefusal::Algorithm(a) if a == "HS256"));
    let stranger = refused(idp.token("ciso@example.com").signed_by_stranger()).await;
    assert!(matches!(stranger, TokenRefusal::Invalid(_)), "{stranger}");
    let unknown = refused(idp.token("ciso@example.com").kid("not-published").signed()).await;
    assert!(matches!(unknown, TokenRefusal::UnknownKey(k) if k == "not-published"));

    let other_client = refused(idp.token("ciso@example.com").claim("aud", json!("another-app")).signed()).await;
    assert!(matches!(other_client, TokenRefusal::Audience));
    let shared = idp.token("ciso@example.com").claim("aud", json!([CLIENT_ID, "another-app"]));
    assert!(matches!(refused(shared.claim("azp", json!("another-app")).signed()).await, TokenRefusal::Audience));
    let issuer = refused(idp.token("ciso@example.com").claim("iss", json!("https://evil.test")).signed()).await;
    assert!(matches!(issuer, TokenRefusal::Issuer(i) if i == "https://evil.test"));
    let old = (now - chrono::Duration::hours(2)).timestamp();
    let expired = refused(idp.token("ciso@example.com").claim("exp", json!(old)).signed()).await;
    assert!(matches!(expired, TokenRefusal::Expired(_)));
    let later = (now + chrono::Duration::hours(1)).timestamp();
    assert!(matches!(
        refused(idp.token("ciso@example.com").claim("iat", json!(later)).signed()).await,
        TokenRefusal::NotYetValid
    ));
    let unverified = idp.token("ciso@example.com").claim("email_verified", json!(false)).signed();
    assert!(matches!(refused(unverified).await, TokenRefusal::EmailNotVerified));
    let nobody = refused(idp.token("ciso@example.com").claim("email", json!(null)).signed()).await;
    assert!(matches!(nobody, TokenRefusal::NoIdentity(c) if c == "email"));
    assert!(matches!(refused("not.a.token".into()).await, TokenRefusal::Malformed(_)));
    for message in [none.to_string(), unknown_message(&v).await] {
        assert!(!message.contains("eyJ"), "an error never quotes a token: {message}");
    }
}

async fn unknown_message(v: &Verifier) -> String {
    v.verify("eyJhbGciOiJSUzI1NiJ9.eyJ9.c2ln", Utc::now(), None).await.unwrap_err().to_string()
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_an_unknown_one_does_not_hammer_the_provider() {
    let idp = FakeIdp::start().await;
    let v = verifier(&idp, Duration::ZERO).await;
    assert_eq!(idp.jwks_reads(), 1, "discovery reads the keys");
    assert!(v.verify(&idp.token("a@example.com").signed(), Utc::now(), None).await.is_ok());
    assert_eq!(idp.jwks_reads(), 1, "a known key is not fetched again");

    idp.rotate();
    let rotated = idp.token("a@example.com").signed();
    assert!(v.verify(&rotated, Utc::now(), None).await.is_ok(), "the new key is fetched");
    assert_eq!(idp.jwks_reads(), 2);
    assert!(v.verify(&idp.token("b@example.com").signed(), Utc::now(), None).await.is_ok());
    assert_eq!(idp.jwks_reads(), 2, "and kept");

    // within min_refresh an unknown kid is refused without asking the provider again
    let patient = verifier(&idp, Duration::from_secs(3600)).await;
    let reads = idp.jwks_reads();
    for _ in 0..5 {
        let forged = idp.token("a@example.com").kid("made-up").signed();
        assert!(matches!(patient.verify(&forged, Utc::now(), None).await, Err(TokenRefusal::UnknownKey(_))));
    }
    assert_eq!(idp.jwks_reads(), reads, "no fetch per forged token");
}

#[tokio::test]
async fn a_provider_that_names_another_issuer_or_does_not_answer_is_an_error_at_discovery() {
    let idp = FakeIdp::start().await;
    let wrong = Settings::new(&format!("{}/", idp.issuer), CLIENT_ID);
    assert!(Verifier::discover(wrong).await.is_ok(), "a trailing slash is the same issuer");
    let mut gone = Settings::new("http://127.0.0.1:9", CLIENT_ID);
    gone.timeout = Duration::from_secs(2);
    let err = Verifier::discover(gone).await.unwrap_err();
    assert!(err.to_string().contains("did not answer http://127.0.0.1:9/.well-known/openid-configuration"), "{err}");
}
