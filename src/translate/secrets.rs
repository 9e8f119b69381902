//! Refusing literal secrets in a manifest, and the token-writer init container
//! that replaces Kubernetes' secret volume.
//!
//! ActiveGate reads its tokens from files, while ECS hands secrets to a
//! container only as environment variables. A short-lived init container gets
//! the tokens through ECS `secrets` (ARNs in the task definition, values only
//! at run time) and writes them into a task volume that the ActiveGate
//! container mounts read-only. The values are written with the shell's
//! built-in `printf`, so they never appear in a process argument list.

use crate::model::aws::SecretArn;
use crate::model::task_definition::{
    ContainerDefinition, KernelCapabilities, LinuxParameters, MountPoint, Secret,
};

/// Where ActiveGate reads its tokens.
pub const TOKENS_DIR: &str = "/var/lib/dynatrace/secrets/tokens";
/// The init container's name.
pub const TOKEN_WRITER: &str = "token-writer";

/// Environment variable names that hold a secret when given a literal value.
const SECRET_NAME_PARTS: [&str; 7] = [
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
];

/// Whether an environment variable with this name must not carry a literal value.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|p| upper.contains(p))
}

/// Whether a value contains a token or anything else that looks like a secret
/// (the one decision is [`crate::model::secret::find`]).
pub fn contains_dynatrace_token(value: &str) -> bool {
    crate::model::secret::is_token_like(value)
}

/// For a command-line argument, whether it carries a secret: `--token=X`,
/// `--authtoken=X`, `--password=X`, or a Dynatrace token anywhere. Returns
/// also whether the *next* argument is the secret (`--token X`).
pub fn secret_in_arg(arg: &str) -> (bool, bool) {
    if contains_dynatrace_token(arg) {
        return (true, false);
    }
    let Some(flag) = arg.strip_prefix('-') else {
        return (false, false);
    };
    let flag = flag.trim_start_matches('-');
    let (name, value) = match flag.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (flag, None),
    };
    let normalized = name.replace('-', "_");
    if !is_secret_name(&normalized) {
        return (false, false);
    }
    match value {
        Some(v) => (!v.is_empty(), false),
        None => (false, true),
    }
}

/// The script the init container runs. Only variable *names* appear in it.
fn script(with_auth_token: bool, owner: Option<&str>) -> String {
    let mut s = format!("set -eu; umask 077; d={TOKENS_DIR}; ");
    s.push_str("printf '%s' \"$TENANT_TOKEN\" > \"$d/tenant-token\"; ");
    if with_auth_token {
        s.push_str("printf '%s' \"$AUTH_TOKEN\" > \"$d/auth-token\"; ");
    }
    if let Some(owner) = owner {
        s.push_str(&format!("chown {owner} \"$d\" \"$d\"/*; "));
    }
    s.push_str("echo 'tokens written'");
    s
}

/// Linux capabilities Docker grants by default, all of which the token writer
/// drops except `CHOWN` (it hands the files to the ActiveGate user).
const DEFAULT_CAPABILITIES_BUT_CHOWN: [&str; 13] = [
    "AUDIT_WRITE",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The token-writer container. `owner` is the ActiveGate user (`1001` or
/// `1001:1001`) that must be able to read the files.
pub fn token_writer(
    image: &str,
    volume: &str,
    tenant_token: &SecretArn,
    auth_token: Option<&SecretArn>,
    owner: Option<&str>,
) -> ContainerDefinition {
    let owner = owner.map(|o| {
        if o.contains(':') {
            o.to_owned()
        } else {
            format!("{o}:{o}")
        }
    });
    let mut c = ContainerDefinition::new(TOKEN_WRITER, image);
    c.essential = false;
    c.entry_point = vec!["/bin/bash".into(), "-c".into()];
    c.command = vec![script(auth_token.is_some(), owner.as_deref())];
    // Root, so that it can write into the root-owned task volume and hand the
    // files to the ActiveGate user; every other capability is dropped.
    c.user = Some("0".into());
    c.readonly_root_filesystem = Some(true);
    c.linux_parameters = Some(LinuxParameters {
        capabilities: Some(KernelCapabilities {
            add: Vec::new(),
            drop: DEFAULT_CAPABILITIES_BUT_CHOWN
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }),
        init_process_enabled: None,
    });
    c.secrets.push(Secret {
        name: "TENANT_TOKEN".into(),
        value_from: tenant_token.to_string(),
    });
    if let Some(auth) = auth_token {
        c.secrets.push(Secret {
            name: "AUTH_TOKEN".into(),
            value_from: auth.to_string(),
        });
    }
    c.mount_points.push(MountPoint {
        source_volume: volume.to_owned(),
        container_path: TOKENS_DIR.to_owned(),
        read_only: false,
    });
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for n in [
            "DT_TENANT_TOKEN",
            "auth_token",
            "PROXY_PASSWORD",
            "MY_SECRET",
            "API_KEY",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "DT_TENANT",
            "DT_SERVER",
            "DT_CAPABILITIES",
            "DT_NETWORK_ZONE",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn tokens_in_arguments() {
        assert_eq!(secret_in_arg("--authtoken=abc"), (true, false));
        assert_eq!(secret_in_arg("--token=abc"), (true, false));
        assert_eq!(secret_in_arg("--tenant-token=abc"), (true, false));
        assert_eq!(secret_in_arg("--token"), (false, true));
        assert_eq!(secret_in_arg("--token="), (false, false));
        assert_eq!(secret_in_arg("--tenant=abc12345"), (false, false));
        assert_eq!(secret_in_arg("--set-network-zone=aws.eu"), (false, false));
        assert_eq!(secret_in_arg("x dt0c01.ABC.DEF y"), (true, false));
        assert!(!contains_dynatrace_token("dt0c1.x"));
    }

    #[test]
    fn the_writer_names_variables_never_values() {
        let tenant: SecretArn = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:t-AbCdEf"
            .parse()
            .expect("valid");
        let c = token_writer("img:1", "tokens", &tenant, None, Some("1001"));
        assert!(!c.essential);
        assert_eq!(c.secrets.len(), 1);
        assert_eq!(c.secrets[0].value_from, tenant.to_string());
        let script = &c.command[0];
        assert!(script.contains("\"$TENANT_TOKEN\""));
        assert!(!script.contains("AUTH_TOKEN"));
        assert!(script.contains("chown 1001:1001"));
        assert_eq!(c.entry_point, ["/bin/bash", "-c"]);
    }
}
