//! A request's query string as name/value pairs (`application/x-www-form-urlencoded`:
//! `+` is a space, `%XX` a byte). Pure.

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Every value of `name`, in order (`command` repeats).
pub fn all<'a>(q: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    q.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

pub fn first<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_encoded_values_are_kept_in_order() {
        let q = parse(Some(
            "command=sh&command=-c&command=echo+%22a%26b%22&tty=1&x",
        ));
        assert_eq!(all(&q, "command"), vec!["sh", "-c", "echo \"a&b\""]);
        assert_eq!(first(&q, "tty"), Some("1"));
        assert_eq!(first(&q, "x"), Some(""));
        assert_eq!(
            parse(Some("a=%zz%4")),
            vec![("a".to_string(), "%zz%4".to_string())]
        );
        assert!(parse(None).is_empty());
    }
}
