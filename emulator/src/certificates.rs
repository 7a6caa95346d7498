//! Certificate credentials of an app (Graph's `keyCredentials` of type `AsymmetricX509Cert`):
//! the public X.509 certificate a person uploads in the portal or an app adds with `addKey`,
//! read just far enough to know its thumbprints, validity and RSA public key.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};
use uuid::Uuid;

use crate::apps::App;

/// DER of the rsaEncryption algorithm identifier (1.2.840.113549.1.1.1).
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// A certificate registered on an app.
#[derive(Clone, Debug)]
pub struct KeyCredential {
    /// Graph's `keyId`.
    pub key_id: Uuid,
    /// Graph's `displayName`: the certificate's subject as the portal shows it.
    pub display_name: String,
    /// The certificate (DER).
    pub der: Vec<u8>,
    /// The PKCS#1 `RSAPublicKey` (DER) that verifies the app's signatures.
    pub rsa_public_key: Vec<u8>,
    /// The certificate's `notBefore` (Graph's `startDateTime`).
    pub starts_at: OffsetDateTime,
    /// The certificate's `notAfter` (Graph's `endDateTime`).
    pub expires_at: OffsetDateTime,
}

impl KeyCredential {
    /// Reads a certificate given as PEM or as Base64 of its DER (Graph's `key`), to be shown as
    /// `display_name`; `Err` says why it is not an RSA X.509 certificate.
    pub fn parse(text: &str, display_name: &str) -> Result<Self, String> {
        let b64: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
            .collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|_| "the certificate is neither PEM nor Base64 DER".to_string())?;
        let parsed = Parsed::read(&der).ok_or("the certificate is not a DER X.509 certificate")?;
        Ok(Self {
            key_id: Uuid::new_v4(),
            display_name: display_name.to_owned(),
            rsa_public_key: parsed.rsa_public_key.ok_or(
                "the certificate's key is not RSA (Entra ID takes RSA certificates for client assertions)",
            )?,
            starts_at: parsed.not_before,
            expires_at: parsed.not_after,
            der,
        })
    }

    /// `x5t`: Base64url of the SHA-1 thumbprint.
    pub fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha1::digest(&self.der))
    }

    /// `x5t#S256`: Base64url of the SHA-256 thumbprint.
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(&self.der))
    }

    /// The SHA-1 thumbprint in hex, as the portal shows it.
    pub fn thumbprint(&self) -> String {
        Sha1::digest(&self.der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// Graph's `keyCredential` resource with its `key` (Base64 DER), as a single object's
    /// `$select=keyCredentials` returns it.
    pub fn graph_with_key(&self) -> serde_json::Value {
        let mut v = self.graph();
        v["key"] = serde_json::Value::String(STANDARD.encode(&self.der));
        v
    }

    /// Graph's `keyCredential` resource (the `key` itself is only returned on `$select` for a
    /// single object: [`Self::graph_with_key`]).
    pub fn graph(&self) -> serde_json::Value {
        let rfc = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        serde_json::json!({
            "customKeyIdentifier": STANDARD.encode(Sha1::digest(&self.der)),
            "displayName": self.display_name,
            "endDateTime": rfc(self.expires_at),
            "key": null,
            "keyId": self.key_id,
            "startDateTime": rfc(self.starts_at),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
        })
    }
}

impl App {
    /// The registered certificate a client assertion's header names by `x5t` or `x5t#S256`.
    /// Base64url padding is ignored: MSAL for Python sends it, and Entra ID accepts that.
    pub fn certificate(&self, x5t: Option<&str>, x5t_s256: Option<&str>) -> Option<&KeyCredential> {
        let bare = |t: &str| t.trim_end_matches('=').to_owned();
        self.certificates.iter().find(|c| {
            x5t.is_some_and(|t| bare(t) == c.x5t())
                || x5t_s256.is_some_and(|t| bare(t) == c.x5t_s256())
        })
    }
}

/// What the emulator needs of a certificate.
struct Parsed {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    rsa_public_key: Option<Vec<u8>>,
}

impl Parsed {
    /// Walks `Certificate → TBSCertificate` (RFC 5280 §4.1) to the validity and the subject
    /// public key info.
    fn read(der: &[u8]) -> Option<Self> {
        let (0x30, cert, _) = tlv(der)? else {
            return None;
        };
        let (0x30, tbs, _) = tlv(cert)? else {
            return None;
        };
        let (tag, _, mut rest) = tlv(tbs)?;
        // `version` is an optional [0]; then serialNumber.
        if tag == 0xa0 {
            rest = tlv(rest)?.2;
        }
        let rest = tlv(rest)?.2; // signature algorithm
        let rest = tlv(rest)?.2; // issuer
        let (0x30, validity, rest) = tlv(rest)? else {
            return None;
        };
        let (t1, nb, after) = tlv(validity)?;
        let (t2, na, _) = tlv(after)?;
        let rest = tlv(rest)?.2; // subject
        let (0x30, spki, _) = tlv(rest)? else {
            return None;
        };
        let (0x30, alg, key) = tlv(spki)? else {
            return None;
        };
        let (0x06, oid, _) = tlv(alg)? else {
            return None;
        };
        let (0x03, bits, _) = tlv(key)? else {
            return None;
        };
        Some(Self {
            not_before: asn1_time(t1, nb)?,
            not_after: asn1_time(t2, na)?,
            rsa_public_key: (oid == RSA_ENCRYPTION && bits.first() == Some(&0))
                .then(|| bits[1..].to_vec()),
        })
    }
}

/// One DER tag-length-value: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || input.len() < n {
            return None;
        }
        let (bytes, rest) = input.split_at(n);
        input = rest;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    (input.len() >= len).then(|| (tag, &input[..len], &input[len..]))
}

/// `UTCTime` (`YYMMDDHHMMSSZ`, years 1950–2049) or `GeneralizedTime` (`YYYYMMDDHHMMSSZ`).
fn asn1_time(tag: u8, bytes: &[u8]) -> Option<OffsetDateTime> {
    let s = std::str::from_utf8(bytes).ok()?.strip_suffix('Z')?;
    let (year, s) = match tag {
        0x17 => {
            let yy: i32 = s.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let n = |i: usize| -> Option<u8> { s.get(i..i + 2)?.parse().ok() };
    let date = Date::from_calendar_date(year, Month::try_from(n(0)?).ok()?, n(2)?).ok()?;
    let time = Time::from_hms(n(4)?, n(6)?, n(8)?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rcgen_certificate_reads_with_its_validity_and_rsa_key() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["gangway".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 1, 2);
        params.not_after = rcgen::date_time_ymd(2060, 3, 4);
        let cert = params.self_signed(&key).unwrap();
        let parsed = Parsed::read(cert.der()).unwrap();
        assert_eq!(
            parsed.not_before.date(),
            Date::from_calendar_date(2026, Month::January, 2).unwrap()
        );
        // 2060 needs GeneralizedTime (RFC 5280 §4.1.2.5).
        assert_eq!(parsed.not_after.year(), 2060);
        // An EC key is no RSA key: refused on upload.
        assert!(parsed.rsa_public_key.is_none());
        assert!(
            KeyCredential::parse(&cert.pem(), "CN=gangway")
                .unwrap_err()
                .contains("not RSA")
        );
        assert!(KeyCredential::parse("not a certificate", "x").is_err());
    }
}
