//! Whose keys sign: STS (AssumeRole, GetCallerIdentity) at the simulator's endpoint, and
//! the checks of a call's SigV4 credential (`require_assumed_role`, `check_region`).
//!
//! STS speaks the awsQuery protocol: a form-encoded POST (`Action=AssumeRole&Version=
//! 2011-06-15&RoleArn=…`) answered in XML, errors as `<ErrorResponse>`. A role can be
//! assumed only in the simulator's own account (one simulator is one account and region);
//! the keys handed out are remembered so that ECS and Logs calls can be told apart by who
//! signed them. Signatures are not verified: the simulator reads only the access key id and
//! the credential scope of `Authorization`, and the session token of an issued key.

use std::collections::BTreeMap;

use hyper::StatusCode;

use super::SimOptions;
use super::api::ApiError;
use super::state::{IssuedKey, State};

/// STS's XML namespace.
const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Shortest and longest lifetime AssumeRole grants (`DurationSeconds`), and its default.
const DURATION: (i64, i64, i64) = (900, 43_200, 3_600);

/// The signer of a request, from `Authorization: AWS4-HMAC-SHA256
/// Credential=<key id>/<date>/<region>/<service>/aws4_request, SignedHeaders=…, Signature=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub access_key: String,
    pub region: String,
}

impl Signer {
    pub fn parse(authorization: Option<&str>) -> Option<Signer> {
        let rest = authorization?.strip_prefix("AWS4-HMAC-SHA256")?;
        let credential = rest
            .split(',')
            .map(str::trim)
            .find_map(|part| part.strip_prefix("Credential="))?;
        let mut scope = credential.split('/');
        let access_key = scope.next().filter(|k| !k.is_empty())?;
        let _date = scope.next()?;
        let region = scope.next()?;
        Some(Signer {
            access_key: access_key.to_owned(),
            region: region.to_owned(),
        })
    }
}

/// SHA-256 of a session token: what the state keeps instead of the token.
fn token_hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Refuses an ECS or Logs call as AWS would when the options ask for checks: unsigned,
/// scoped to another region, or signed with a key this simulator did not issue.
///
/// An unknown key answers `UnrecognizedClientException` (400, "The security token included
/// in the request is invalid."): that is what ECS and CloudWatch Logs (AWS JSON 1.1) answer
/// for credentials AWS does not know. `AccessDeniedException` would mean a known identity
/// without permission, which is not the case being simulated.
pub fn check_caller(
    st: &State,
    options: &SimOptions,
    signer: Option<&Signer>,
    security_token: Option<&str>,
    now_real: i64,
) -> Result<(), ApiError> {
    if !(options.require_assumed_role || options.check_region) {
        return Ok(());
    }
    let Some(signer) = signer else {
        return Err(ApiError::new(
            400,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    if options.check_region && signer.region != options.region {
        return Err(ApiError::new(
            403,
            "InvalidSignatureException",
            wrong_region(&signer.region),
        ));
    }
    if !options.require_assumed_role {
        return Ok(());
    }
    let invalid = || {
        ApiError::new(
            400,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    };
    let key = st.issued_keys.get(&signer.access_key).ok_or_else(invalid)?;
    if security_token.map(token_hash) != Some(key.session_token_sha256) {
        return Err(invalid());
    }
    if key.expires_at <= now_real {
        return Err(ApiError::new(
            400,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ));
    }
    Ok(())
}

fn wrong_region(region: &str) -> String {
    format!("Credential should be scoped to a valid region, not '{region}'. ")
}

/// A form-encoded body (`a=b&c=d`, `+` for space, `%XX` escapes); undecodable pairs are
/// left out, so that their parameter reads as missing.
pub fn parse_form(body: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// An STS answer: status and XML body.
pub type Answer = (StatusCode, String);

fn error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Answer {
    let sender = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    (
        status,
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{sender}</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            escape(message)
        ),
    )
}

fn validation(message: &str, request_id: &str) -> Answer {
    error(
        StatusCode::BAD_REQUEST,
        "ValidationError",
        message,
        request_id,
    )
}

/// Answers one STS call. `now_real` is wall-clock seconds since the epoch: credentials
/// expire in the client's time, whatever the simulator's speed.
pub fn handle(
    st: &mut State,
    options: &SimOptions,
    signer: Option<&Signer>,
    form: &BTreeMap<String, String>,
    now_real: i64,
    request_id: &str,
) -> Answer {
    if options.check_region
        && let Some(s) = signer
        && s.region != options.region
    {
        return error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            &wrong_region(&s.region),
            request_id,
        );
    }
    let Some(signer) = signer else {
        return error(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
            request_id,
        );
    };
    let caller = caller_of(st, signer);
    match form.get("Action").map(String::as_str) {
        Some("AssumeRole") => assume_role(st, &caller.0, form, now_real, request_id),
        Some("GetCallerIdentity") => (
            StatusCode::OK,
            format!(
                "<GetCallerIdentityResponse xmlns=\"{XMLNS}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
                escape(&caller.0),
                escape(&caller.1),
                escape(&st.account)
            ),
        ),
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("Could not find operation {other} for version 2011-06-15"),
            request_id,
        ),
        None => error(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "Missing Action",
            request_id,
        ),
    }
}

/// (ARN, user id) of whoever signed: the assumed role's session for a key STS issued here,
/// otherwise an IAM user of the simulator's account (the simulator does not know whose
/// base credentials they are).
fn caller_of(st: &State, signer: &Signer) -> (String, String) {
    match st.issued_keys.get(&signer.access_key) {
        Some(k) => (k.assumed_role_arn.clone(), k.assumed_role_id.clone()),
        None => (
            format!("arn:aws:iam::{}:user/simulator", st.account),
            signer.access_key.clone(),
        ),
    }
}

/// `arn:aws:iam::<12 digits>:role/[path/]<name>` → (account, name).
fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path = resource.strip_prefix("role/")?;
    let name = path.rsplit('/').next()?;
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    (account_ok && name_ok).then_some((account, name))
}

fn session_name_ok(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// `n` characters of AWS's key alphabet (upper-case letters and digits 2–7).
fn key_chars(rng: &mut fastrand::Rng, n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    (0..n)
        .map(|_| char::from(ALPHABET[rng.usize(..ALPHABET.len())]))
        .collect()
}

fn assume_role(
    st: &mut State,
    caller: &str,
    form: &BTreeMap<String, String>,
    now_real: i64,
    request_id: &str,
) -> Answer {
    let (Some(role_arn), Some(session)) = (form.get("RoleArn"), form.get("RoleSessionName")) else {
        return validation(
            "1 validation error detected: RoleArn and RoleSessionName must not be null",
            request_id,
        );
    };
    let Some((account, role_name)) = parse_role_arn(role_arn) else {
        return validation(&format!("{role_arn} is invalid"), request_id);
    };
    if !session_name_ok(session) {
        return validation(
            "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint: Member must have length between 2 and 64 and match [\\w+=,.@-]*",
            request_id,
        );
    }
    if form
        .get("ExternalId")
        .is_some_and(|id| !(2..=1224).contains(&id.len()))
    {
        // The external id itself is never echoed: it is a secret of the trust policy.
        return validation(
            "1 validation error detected: Value at 'externalId' failed to satisfy constraint: Member must have length between 2 and 1224",
            request_id,
        );
    }
    let (min, max, default) = DURATION;
    let duration = match form.get("DurationSeconds").map(|d| d.parse::<i64>()) {
        None => default,
        Some(Ok(d)) if (min..=max).contains(&d) => d,
        Some(_) => {
            return validation(
                "The requested DurationSeconds exceeds the allowed range of 900 to 43200 seconds",
                request_id,
            );
        }
    };
    if account != st.account {
        return error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!(
                "User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
            ),
            request_id,
        );
    }
    let mut rng = fastrand::Rng::new();
    let access_key = format!("ASIA{}", key_chars(&mut rng, 16));
    let secret: String = (0..40).map(|_| rng.alphanumeric()).collect();
    let token: String = (0..256).map(|_| rng.alphanumeric()).collect();
    let role_hash = token_hash(role_arn);
    let mut role_rng = fastrand::Rng::with_seed(u64::from_le_bytes(
        role_hash[..8].try_into().unwrap_or_default(),
    ));
    let key = IssuedKey {
        role_arn: role_arn.clone(),
        session_name: session.clone(),
        assumed_role_arn: format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}"),
        assumed_role_id: format!("AROA{}:{session}", key_chars(&mut role_rng, 17)),
        expires_at: now_real + duration,
        session_token_sha256: token_hash(&token),
    };
    let expiration = chrono::DateTime::from_timestamp(key.expires_at, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ");
    let body = format!(
        "<AssumeRoleResponse xmlns=\"{XMLNS}\"><AssumeRoleResult><Credentials><AccessKeyId>{access_key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>{expiration}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>{}</AssumedRoleId><Arn>{}</Arn></AssumedRoleUser><PackedPolicySize>0</PackedPolicySize></AssumeRoleResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></AssumeRoleResponse>",
        escape(&key.assumed_role_id),
        escape(&key.assumed_role_arn),
    );
    st.issued_keys.insert(access_key, key);
    (StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signer_is_read_from_the_credential_scope() {
        let auth = "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261202/eu-west-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            Signer::parse(Some(auth)),
            Some(Signer {
                access_key: "ASIAEXAMPLE".into(),
                region: "eu-west-1".into()
            })
        );
        assert_eq!(Signer::parse(Some("Api-Token x")), None);
        assert_eq!(Signer::parse(None), None);
    }

    #[test]
    fn forms_decode_escapes_and_plus() {
        let f = parse_form(
            b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&X=a+b&bad=%zz",
        );
        assert_eq!(f["Action"], "AssumeRole");
        assert_eq!(f["RoleArn"], "arn:aws:iam::1:role/r");
        assert_eq!(f["X"], "a b");
        assert!(!f.contains_key("bad"));
    }

    #[test]
    fn an_issued_key_needs_its_session_token_and_expires() {
        let mut st = State::new("us-east-1", "123456789012");
        st.issued_keys.insert(
            "ASIAKEY".into(),
            IssuedKey {
                role_arn: "arn:aws:iam::123456789012:role/r".into(),
                session_name: "s1".into(),
                assumed_role_arn: "arn:aws:sts::123456789012:assumed-role/r/s1".into(),
                assumed_role_id: "AROAX:s1".into(),
                expires_at: 1_000,
                session_token_sha256: token_hash("the-token"),
            },
        );
        let options = SimOptions {
            require_assumed_role: true,
            ..SimOptions::default()
        };
        let signer = |key: &str| Signer {
            access_key: key.into(),
            region: "us-east-1".into(),
        };
        let code = |signer: Option<&Signer>, token: Option<&str>, now: i64| {
            check_caller(&st, &options, signer, token, now)
                .err()
                .map(|e| e.code)
        };
        assert_eq!(code(Some(&signer("ASIAKEY")), Some("the-token"), 999), None);
        assert_eq!(
            code(Some(&signer("ASIAKEY")), Some("the-token"), 1_000),
            Some("ExpiredTokenException")
        );
        assert_eq!(
            code(Some(&signer("ASIAKEY")), Some("another"), 999),
            Some("UnrecognizedClientException")
        );
        assert_eq!(
            code(Some(&signer("ASIAKEY")), None, 999),
            Some("UnrecognizedClientException")
        );
        assert_eq!(
            code(Some(&signer("AKIDBASE")), None, 999),
            Some("UnrecognizedClientException")
        );
        assert_eq!(
            code(None, None, 999),
            Some("MissingAuthenticationTokenException")
        );
        // Without the option any signer, or none, passes.
        assert!(check_caller(&st, &SimOptions::default(), None, None, 999).is_ok());
    }

    #[test]
    fn role_arns_name_an_account_and_a_role() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::123456789012:role/path/ag-lifecycle"),
            Some(("123456789012", "ag-lifecycle"))
        );
        assert_eq!(parse_role_arn("arn:aws:iam::1234:role/x"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::123456789012:user/x"), None);
    }

    #[test]
    fn a_role_of_another_account_is_denied_and_nothing_is_issued() {
        let mut st = State::new("us-east-1", "123456789012");
        let options = SimOptions::default();
        let signer = Signer {
            access_key: "AKIDBASE".into(),
            region: "us-east-1".into(),
        };
        let mut form = BTreeMap::new();
        form.insert("Action".to_owned(), "AssumeRole".to_owned());
        form.insert(
            "RoleArn".to_owned(),
            "arn:aws:iam::210987654321:role/r".to_owned(),
        );
        form.insert("RoleSessionName".to_owned(), "s1".to_owned());
        let (status, body) = handle(&mut st, &options, Some(&signer), &form, 0, "rid");
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
        assert!(st.issued_keys.is_empty());

        form.insert(
            "RoleArn".to_owned(),
            "arn:aws:iam::123456789012:role/r".to_owned(),
        );
        let (status, body) = handle(&mut st, &options, Some(&signer), &form, 0, "rid");
        assert_eq!(status, StatusCode::OK, "{body}");
        let (key, issued) = st.issued_keys.iter().next().expect("one key issued");
        assert!(key.starts_with("ASIA") && key.len() == 20, "{key}");
        assert_eq!(issued.expires_at, 3_600);
        let between = |open: &str, close: &str| {
            let start = body.find(open).expect("element") + open.len();
            body[start..start + body[start..].find(close).expect("end")].to_owned()
        };
        let secret = between("<SecretAccessKey>", "</SecretAccessKey>");
        let token = between("<SessionToken>", "</SessionToken>");
        assert_eq!((secret.len(), token.len()), (40, 256));
        let shown = format!("{st:?}");
        assert!(
            !shown.contains(&secret) && !shown.contains(&token),
            "{shown}"
        );
    }
}
