//! The user a client certificate names, as Kubernetes reads it: the subject's common name is
//! the user, each organization a group. A small DER walk over the certificate's subject,
//! after rustls has verified the chain.

/// One DER element: its tag and content, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const VERSION: u8 = 0xa0;
/// 2.5.4.3 and 2.5.4.10.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

/// (common name, organizations) of a DER certificate's subject; None when it is not one.
pub fn subject(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (tag, cert, _) = element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == VERSION {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, then the subject.
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (tag, mut names, _) = element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut common_name = String::new();
    let mut organizations = Vec::new();
    while !names.is_empty() {
        let (tag, mut set, next) = element(names)?;
        names = next;
        if tag != SET {
            return None;
        }
        while !set.is_empty() {
            let (_, pair, next) = element(set)?;
            set = next;
            let (tag, oid, value) = element(pair)?;
            if tag != OID {
                return None;
            }
            let (_, text, _) = element(value)?;
            let text = String::from_utf8_lossy(text).into_owned();
            if oid == COMMON_NAME {
                common_name = text;
            } else if oid == ORGANIZATION {
                organizations.push(text);
            }
        }
    }
    Some((common_name, organizations))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_name_is_the_user_and_organizations_are_groups() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver-kubelet-client");
        let cert = params.self_signed(&key).unwrap();
        let (cn, orgs) = subject(cert.der()).unwrap();
        assert_eq!(cn, "kube-apiserver-kubelet-client");
        assert_eq!(orgs, vec!["system:masters".to_string()]);
    }

    #[test]
    fn garbage_is_not_a_subject() {
        assert_eq!(subject(b"\x30\x05\x30\x03"), None);
        assert_eq!(subject(&[]), None);
        assert_eq!(subject(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
