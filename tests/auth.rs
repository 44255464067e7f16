//! Sign-in in workerd (`AUTH_MODE = jwt`): only a token signed by a trusted key reaches its
//! subject's data, on the R2 path and on the user's Durable Object alike.
//!
//! Keys are made and tokens signed by the real `openssl` program: RSA (RS256), P-256 (ES256)
//! and an HMAC secret (HS256). Each worker is started once and asked many questions, so a
//! wrong answer names the case it is for.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use test_support::{Options, TestResponse, TestWorker, ADMIN_TOKEN};

const SECRET: &str = "a shared secret of the sign-in service, long enough";
const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "reel-ballers";
const ACCESS_HEADER: &str = "Cf-Access-Jwt-Assertion";

fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A private key made by openssl, and its public half as a JWK.
struct KeyPair {
    pem: PathBuf,
    jwk: Value,
}

impl KeyPair {
    fn rsa(dir: &Path, kid: &str) -> Self {
        let pem = dir.join(format!("{kid}.pem"));
        let path = pem.to_str().unwrap();
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                path,
            ],
            b"",
        );
        let modulus =
            String::from_utf8(openssl(&["rsa", "-in", path, "-noout", "-modulus"], b"")).unwrap();
        let hex = modulus.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let jwk = json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(&n), "e": "AQAB"});
        Self { pem, jwk }
    }

    fn p256(dir: &Path, kid: &str) -> Self {
        let pem = dir.join(format!("{kid}.pem"));
        let path = pem.to_str().unwrap();
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                path,
            ],
            b"",
        );
        // The DER public key ends with the uncompressed point 04 || x || y.
        let der = openssl(&["pkey", "-in", path, "-pubout", "-outform", "DER"], b"");
        let point = &der[der.len() - 64..];
        let jwk = json!({"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(&point[..32]), "y": b64(&point[32..])});
        Self { pem, jwk }
    }

    fn public_pem(&self) -> Vec<u8> {
        openssl(&["pkey", "-in", self.pem.to_str().unwrap(), "-pubout"], b"")
    }
}

/// How a test token is signed.
enum Signer<'a> {
    Hmac(&'a [u8]),
    Rsa(&'a KeyPair),
    Ec(&'a KeyPair),
    Unsigned,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a token for `sub` that every check accepts; tests change one thing at a time.
fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": ISSUER, "aud": [AUDIENCE], "iat": now(), "nbf": now() - 5, "exp": now() + 600})
}

fn token(header: Value, claims: &Value, signer: Signer<'_>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = match signer {
        Signer::Hmac(key) => {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            let macopt = format!("hexkey:{hex}");
            openssl(
                &[
                    "dgst", "-sha256", "-mac", "HMAC", "-macopt", &macopt, "-binary",
                ],
                input.as_bytes(),
            )
        }
        Signer::Rsa(key) => openssl(
            &[
                "dgst",
                "-sha256",
                "-sign",
                key.pem.to_str().unwrap(),
                "-binary",
            ],
            input.as_bytes(),
        ),
        Signer::Ec(key) => raw_ecdsa(&openssl(
            &[
                "dgst",
                "-sha256",
                "-sign",
                key.pem.to_str().unwrap(),
                "-binary",
            ],
            input.as_bytes(),
        )),
        Signer::Unsigned => Vec::new(),
    };
    format!("{input}.{}", b64(&signature))
}

/// openssl's DER `SEQUENCE { INTEGER r, INTEGER s }` as JWS's r || s, 32 bytes each.
fn raw_ecdsa(der: &[u8]) -> Vec<u8> {
    let mut at = 2; // SEQUENCE tag and length (< 128 for P-256)
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[at], 0x02, "an INTEGER");
        let len = der[at + 1] as usize;
        let int = &der[at + 2..at + 2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0, 32 - int.len()));
        out.extend(int);
        at += 2 + len;
    }
    out
}

fn with_token(
    worker: &TestWorker,
    method: &str,
    path: &str,
    token: &str,
    user: Option<&str>,
) -> TestResponse {
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = if method == "POST" {
        static PROJECTS: AtomicUsize = AtomicUsize::new(0);
        let name = format!("project {}", PROJECTS.fetch_add(1, Ordering::SeqCst));
        json!({"name": name, "aspect_ratio": "1:1"})
            .to_string()
            .into_bytes()
    } else {
        Vec::new()
    };
    worker.request(method, path, user, &headers, body)
}

fn whoami(worker: &TestWorker, token: &str) -> TestResponse {
    with_token(worker, "GET", "/api/auth/whoami", token, None)
}

fn project_count(worker: &TestWorker, token: &str) -> usize {
    let response = with_token(worker, "GET", "/api/projects", token, None);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.json().as_array().unwrap().len()
}

/// A 401 as the API promises it: a detail, and a challenge saying how to authenticate.
fn assert_refused(response: &TestResponse, case: &str) {
    assert_eq!(
        response.status,
        401,
        "{case}: {}",
        String::from_utf8_lossy(&response.body)
    );
    assert!(response.json()["detail"].is_string(), "{case}");
    let challenge = response.header("WWW-Authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer"),
        "{case}: challenge {challenge:?}"
    );
}

#[test]
fn only_tokens_signed_by_a_trusted_key_reach_their_subjects_data_on_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = KeyPair::rsa(dir.path(), "rsa-1");
    let ec = KeyPair::p256(dir.path(), "ec-1");
    let stranger = KeyPair::rsa(dir.path(), "stranger");
    let jwks = json!({"keys": [rsa.jwk, ec.jwk]}).to_string();
    let worker = TestWorker::start_with_admin(&[
        ("AUTH_MODE", "jwt"),
        ("AUTH_JWT_SECRET", SECRET),
        ("AUTH_JWKS", &jwks),
        ("AUTH_ISSUER", ISSUER),
        ("AUTH_AUDIENCE", AUDIENCE),
        ("AUTH_HEADER", ACCESS_HEADER),
    ]);
    let hs = |claims: &Value| {
        token(
            json!({"alg": "HS256", "typ": "JWT"}),
            claims,
            Signer::Hmac(SECRET.as_bytes()),
        )
    };
    let rs = |claims: &Value| {
        token(
            json!({"alg": "RS256", "kid": "rsa-1"}),
            claims,
            Signer::Rsa(&rsa),
        )
    };
    let es = |claims: &Value| {
        token(
            json!({"alg": "ES256", "kid": "ec-1"}),
            claims,
            Signer::Ec(&ec),
        )
    };

    // alice stays on the R2 path; carol moves to her Durable Object.
    for user in ["alice", "carol"] {
        assert_eq!(
            with_token(&worker, "POST", "/api/projects", &hs(&claims(user)), None).status,
            200
        );
    }
    worker.move_to("carol", test_support::DataPath::Object);

    for (user, path) in test_support::users_on_each_path("alice", "carol") {
        let mut writes = 1;
        for (kind, token) in [
            ("HS256", hs(&claims(user))),
            ("RS256", rs(&claims(user))),
            ("ES256", es(&claims(user))),
        ] {
            let response = whoami(&worker, &token);
            assert_eq!(response.status, 200, "{kind} for {user}");
            assert_eq!(response.json()["user_id"], json!(user), "{kind}");
            assert_eq!(
                response.header("X-Data-Path"),
                Some(path.header()),
                "{kind} for {user}"
            );
            assert_eq!(
                with_token(&worker, "POST", "/api/projects", &token, None).status,
                200
            );
            writes += 1;
            assert_eq!(project_count(&worker, &token), writes, "{kind} for {user}");
        }

        let mut expired = claims(user);
        expired["exp"] = json!(now() - 3600);
        let mut early = claims(user);
        early["nbf"] = json!(now() + 3600);
        let mut no_expiry = claims(user);
        no_expiry.as_object_mut().unwrap().remove("exp");
        let mut other_issuer = claims(user);
        other_issuer["iss"] = json!("https://evil.example.test");
        let mut other_audience = claims(user);
        other_audience["aud"] = json!("another-app");
        let valid = claims(user);
        let rsa_public_pem = rsa.public_pem();
        let refused = [
            ("expired", rs(&expired)),
            ("not yet valid", es(&early)),
            ("no expiry", hs(&no_expiry)),
            ("other issuer", rs(&other_issuer)),
            ("other audience", es(&other_audience)),
            (
                "wrong HMAC secret",
                token(json!({"alg": "HS256"}), &valid, Signer::Hmac(b"guessed")),
            ),
            (
                "signed by an unknown RSA key under a trusted kid",
                token(
                    json!({"alg": "RS256", "kid": "rsa-1"}),
                    &valid,
                    Signer::Rsa(&stranger),
                ),
            ),
            (
                "unknown kid",
                token(
                    json!({"alg": "RS256", "kid": "stranger"}),
                    &valid,
                    Signer::Rsa(&stranger),
                ),
            ),
            (
                "RS256 header on the EC key",
                token(
                    json!({"alg": "RS256", "kid": "ec-1"}),
                    &valid,
                    Signer::Ec(&ec),
                ),
            ),
            (
                "ES256 header on the RSA key",
                token(
                    json!({"alg": "ES256", "kid": "rsa-1"}),
                    &valid,
                    Signer::Rsa(&rsa),
                ),
            ),
            (
                "HS256 keyed with the RSA public key",
                token(
                    json!({"alg": "HS256", "kid": "rsa-1"}),
                    &valid,
                    Signer::Hmac(&rsa_public_pem),
                ),
            ),
            (
                "alg none",
                token(json!({"alg": "none"}), &valid, Signer::Unsigned),
            ),
            (
                "alg none with a signature",
                format!(
                    "{}{}",
                    token(json!({"alg": "none"}), &valid, Signer::Unsigned),
                    b64(b"x")
                ),
            ),
            (
                "HS512",
                token(
                    json!({"alg": "HS512"}),
                    &valid,
                    Signer::Hmac(SECRET.as_bytes()),
                ),
            ),
            ("claims swapped under a valid signature", {
                let genuine = rs(&claims("mallory"));
                let forged = b64(claims(user).to_string().as_bytes());
                let parts: Vec<&str> = genuine.split('.').collect();
                format!("{}.{forged}.{}", parts[0], parts[2])
            }),
            ("not a token", "not-a-jwt".to_owned()),
        ];
        for (case, token) in &refused {
            assert_refused(&whoami(&worker, token), case);
            assert_refused(
                &with_token(&worker, "POST", "/api/projects", token, None),
                case,
            );
        }
        assert_eq!(
            project_count(&worker, &hs(&claims(user))),
            writes,
            "a refused write left a trace"
        );
    }

    // No token: 401, whatever X-User-ID says.
    let anonymous = worker.get("/api/projects", Some("alice"));
    assert_refused(&anonymous, "no token");
    assert!(anonymous
        .header("WWW-Authenticate")
        .unwrap()
        .contains("realm"));

    // The cookie and the configured header carry tokens too.
    let cookie = format!("theme=dark; session={}", es(&claims("alice")));
    let response = worker.request(
        "GET",
        "/api/auth/whoami",
        None,
        &[("Cookie", &cookie)],
        Vec::new(),
    );
    assert_eq!(
        (response.status, response.json()["user_id"].clone()),
        (200, json!("alice"))
    );
    let access = rs(&claims("carol"));
    let response = worker.request(
        "GET",
        "/api/auth/whoami",
        None,
        &[(ACCESS_HEADER, &access)],
        Vec::new(),
    );
    assert_eq!(
        (response.status, response.json()["user_id"].clone()),
        (200, json!("carol"))
    );
    let other_cookie = format!("sessionid={}", es(&claims("alice")));
    assert_refused(
        &worker.request(
            "GET",
            "/api/auth/whoami",
            None,
            &[("Cookie", &other_cookie)],
            Vec::new(),
        ),
        "a cookie of another name",
    );

    // alice's token never reaches bob's data: naming bob is refused, and deleting deletes hers.
    let alice = hs(&claims("alice"));
    let bob = hs(&claims("bob"));
    assert_eq!(
        with_token(&worker, "POST", "/api/projects", &bob, None).status,
        200
    );
    for (method, path) in [
        ("GET", "/api/projects"),
        ("POST", "/api/projects"),
        ("DELETE", "/api/auth/user"),
    ] {
        let response = with_token(&worker, method, path, &alice, Some("bob"));
        assert_eq!(response.status, 403, "{method} {path} naming bob");
        assert!(response.json()["detail"]
            .as_str()
            .unwrap()
            .contains("X-User-ID"));
    }
    assert_eq!(project_count(&worker, &bob), 1);
    // Naming oneself is fine.
    assert_eq!(
        with_token(&worker, "GET", "/api/projects", &alice, Some("alice")).status,
        200
    );
    assert_eq!(
        with_token(&worker, "DELETE", "/api/auth/user", &alice, None).status,
        200
    );
    assert_eq!(project_count(&worker, &alice), 0);
    assert_eq!(
        project_count(&worker, &bob),
        1,
        "bob's data survived alice's delete"
    );
    let carol = es(&claims("carol"));
    assert_eq!(
        with_token(&worker, "DELETE", "/api/auth/user", &carol, None).status,
        200
    );
    assert_eq!(project_count(&worker, &carol), 0, "deleted on her object");

    // The admin API keeps its own token: a user's token is not it.
    let admin = worker.request(
        "GET",
        "/admin/users",
        None,
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        Vec::new(),
    );
    assert_eq!(admin.status, 200);
    assert_eq!(
        with_token(&worker, "GET", "/admin/users", &alice, None).status,
        401
    );
}

/// A JWK set served over HTTP, counting how often it is fetched.
struct JwksServer {
    url: String,
    body: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(keys: &[&KeyPair]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let body = Arc::new(Mutex::new(String::new()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let server = Self {
            url,
            body: body.clone(),
            fetches: fetches.clone(),
        };
        server.serve(keys);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                fetches.fetch_add(1, Ordering::SeqCst);
                let body = body.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        server
    }

    fn serve(&self, keys: &[&KeyPair]) {
        let keys: Vec<&Value> = keys.iter().map(|key| &key.jwk).collect();
        *self.body.lock().unwrap() = json!({ "keys": keys }).to_string();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[test]
fn keys_from_the_jwks_url_are_cached_and_fetched_again_when_a_new_key_appears() {
    let dir = tempfile::tempdir().unwrap();
    let first = KeyPair::rsa(dir.path(), "2026-11");
    let rotated = KeyPair::p256(dir.path(), "2026-12");
    let server = JwksServer::start(&[&first]);
    let worker = TestWorker::start_with(Options {
        vars: vec![
            ("AUTH_MODE".into(), "jwt".into()),
            ("AUTH_JWKS_URL".into(), server.url.clone()),
            ("AUTH_AUDIENCE".into(), AUDIENCE.into()),
        ],
        ..Options::default()
    });
    let rs = token(
        json!({"alg": "RS256", "kid": "2026-11"}),
        &claims("dana"),
        Signer::Rsa(&first),
    );
    assert_eq!(whoami(&worker, &rs).json()["user_id"], json!("dana"));
    assert_eq!(whoami(&worker, &rs).status, 200);
    assert_eq!(server.fetches(), 1, "the set is cached between requests");

    // The issuer rotates: a token naming the new key fetches the set again, once.
    server.serve(&[&first, &rotated]);
    let es = token(
        json!({"alg": "ES256", "kid": "2026-12"}),
        &claims("dana"),
        Signer::Ec(&rotated),
    );
    let response = whoami(&worker, &es);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(server.fetches(), 2);

    // Made-up key ids do not turn requests into fetches.
    for kid in ["made-up-1", "made-up-2"] {
        let forged = token(
            json!({"alg": "RS256", "kid": kid}),
            &claims("dana"),
            Signer::Rsa(&first),
        );
        assert_refused(&whoami(&worker, &forged), kid);
    }
    assert_eq!(
        server.fetches(),
        2,
        "unknown key ids fetched the set again too soon"
    );

    // No HS256 secret is configured: an HS256 token is refused, whatever it is keyed with.
    let hs = token(
        json!({"alg": "HS256"}),
        &claims("dana"),
        Signer::Hmac(b"any"),
    );
    assert_refused(&whoami(&worker, &hs), "HS256 without a secret");
}

#[test]
fn production_defaults_to_tokens_and_without_keys_lets_no_one_in() {
    // AUTH_MODE empty is unset: the top level of wrangler.toml, production.
    let worker = TestWorker::start_with(Options {
        vars: vec![("AUTH_MODE".into(), String::new())],
        ..Options::default()
    });
    assert_refused(
        &worker.get("/api/projects", Some("alice")),
        "X-User-ID alone",
    );
    let response = whoami(
        &worker,
        &token(
            json!({"alg": "HS256"}),
            &claims("alice"),
            Signer::Hmac(SECRET.as_bytes()),
        ),
    );
    assert_failed_closed(&worker, &response, "AUTH_JWT_SECRET");
    assert_eq!(worker.get("/api/health", None).status, 200);
}

/// A misconfiguration lets no one in: 500, a body that names no configuration, and a log line
/// that names the var to set.
fn assert_failed_closed(worker: &TestWorker, response: &TestResponse, var: &str) {
    assert_eq!(
        response.status, 500,
        "a misconfiguration is our error, not a way in"
    );
    let body = String::from_utf8_lossy(&response.body).into_owned();
    assert!(
        !body.contains("AUTH_"),
        "the body names no configuration: {body}"
    );
    // wrangler writes workerd's output to the log a moment after the response.
    let logged = (0..50).any(|_| {
        worker.logs().contains(var) || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            false
        }
    });
    assert!(logged, "the log names {var}: {}", worker.logs());
}

#[test]
fn a_jwk_set_without_an_audience_lets_no_one_in_and_the_log_names_the_var() {
    let dir = tempfile::tempdir().unwrap();
    let idp = KeyPair::rsa(dir.path(), "idp-1");
    let jwks = json!({"keys": [idp.jwk]}).to_string();
    let worker = TestWorker::start_with_admin(&[("AUTH_MODE", "jwt"), ("AUTH_JWKS", &jwks)]);
    // The identity provider's tokens for this application and for another one alike.
    for audience in [AUDIENCE, "another-application"] {
        let mut claims = claims("alice");
        claims["aud"] = json!(audience);
        let signed = token(
            json!({"alg": "RS256", "kid": "idp-1"}),
            &claims,
            Signer::Rsa(&idp),
        );
        let response = with_token(&worker, "POST", "/api/projects", &signed, None);
        assert_failed_closed(&worker, &response, "AUTH_AUDIENCE");
    }
    assert_eq!(
        worker.admin_ok("GET", "/admin/users", Vec::new())["users"],
        json!([])
    );
}
