//! Why a TLS peer's certificate was refused, in words (feature `tls`): rustls prints some
//! causes only as a debug name, such as `UnknownIssuer`.

use tokio_rustls::rustls::CertificateError;

/// A certificate verification failure as a clause starting with "certificate", naming the
/// cause: the name it was checked for (`server_name`) and the names it holds, its validity
/// dates, or an unknown issuer, followed by `issuer_hint` (what the client trusts, and what to
/// do instead).
pub fn certificate_problem(problem: &CertificateError, server_name: &str, issuer_hint: &str) -> String {
    match problem {
        CertificateError::NotValidForName => format!("certificate is not valid for name {server_name}"),
        CertificateError::NotValidForNameContext { presented, .. } if presented.is_empty() => {
            format!("certificate is not valid for name {server_name} (it names no host)")
        }
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names: Vec<&str> = presented.iter().map(|n| plain_name(n)).collect();
            format!("certificate is not valid for name {server_name} (it is valid for {})", names.join(", "))
        }
        CertificateError::Expired => "certificate expired".into(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "certificate expired: it is valid until {} (UNIX time), {} seconds before this check",
            not_after.as_secs(),
            time.as_secs().saturating_sub(not_after.as_secs())
        ),
        CertificateError::NotValidYet => "certificate is not valid yet".into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "certificate is not valid yet: it is valid from {} (UNIX time), {} seconds after this check",
            not_before.as_secs(),
            not_before.as_secs().saturating_sub(time.as_secs())
        ),
        CertificateError::UnknownIssuer => {
            format!("certificate is not issued by a trusted CA (unknown issuer: {issuer_hint})")
        }
        CertificateError::BadSignature => "certificate has an invalid signature".into(),
        CertificateError::Revoked => "certificate has been revoked".into(),
        CertificateError::BadEncoding => "certificate is not valid DER".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate may not be used for TLS server authentication (extended key usage)".into()
        }
        other => format!("certificate was refused: {other}"),
    }
}

/// `other.example` from webpki's `DnsName("other.example")`; other forms as they are.
fn plain_name(presented: &str) -> &str {
    presented.strip_prefix("DnsName(\"").and_then(|n| n.strip_suffix("\")")).unwrap_or(presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_named() {
        let wrong = CertificateError::NotValidForNameContext {
            expected: tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            presented: vec!["DnsName(\"other.example\")".into()],
        };
        assert_eq!(
            certificate_problem(&wrong, "localhost", "-"),
            "certificate is not valid for name localhost (it is valid for other.example)"
        );
        assert_eq!(
            certificate_problem(&CertificateError::UnknownIssuer, "h", "pin it"),
            "certificate is not issued by a trusted CA (unknown issuer: pin it)"
        );
        assert_eq!(certificate_problem(&CertificateError::Expired, "h", "-"), "certificate expired");
    }
}
