//! Turning AWS names into Rust identifiers.

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "crate", "dyn", "else", "enum",
    "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
    "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "yield", "abstract", "become", "do", "final", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "gen",
];

/// `actionARN` -> `action_arn`, `Key` -> `key`, `type` -> `r#type`.
pub fn field(name: &str) -> String {
    let snake = snake(name);
    if KEYWORDS.contains(&snake.as_str()) {
        format!("r#{snake}")
    } else {
        snake
    }
}

pub fn snake(name: &str) -> String {
    // "IoT" is one word, not "Io" + "T".
    let chars: Vec<char> = name.replace("IoT", "Iot").chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out
}

/// `UPDATE_DEVICE_CERTIFICATE` -> `UpdateDeviceCertificate`; `1` -> `V1`.
pub fn variant(value: &str) -> String {
    let mut out = String::new();
    for word in value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut cs = word.chars();
        if let Some(first) = cs.next() {
            out.push(first.to_ascii_uppercase());
            let rest: String = cs.collect();
            // Keep camel humps of mixed-case values ("iotPolicy"), lower all-caps words.
            if word.chars().any(|c| c.is_ascii_lowercase()) {
                out.push_str(&rest);
            } else {
                out.push_str(&rest.to_ascii_lowercase());
            }
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    out
}

/// A shape name as a Rust type name (model shape names are already PascalCase).
pub fn type_name(shape: &str) -> String {
    let mut s: String = shape
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if let Some(first) = s.get(0..1) {
        let upper = first.to_ascii_uppercase();
        s.replace_range(0..1, &upper);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_cases() {
        assert_eq!(field("actionName"), "action_name");
        assert_eq!(field("roleArnForLogging"), "role_arn_for_logging");
        assert_eq!(field("Key"), "key");
        assert_eq!(field("type"), "r#type");
        assert_eq!(field("caCertificateId"), "ca_certificate_id");
        assert_eq!(
            field("updateCACertificateParams"),
            "update_ca_certificate_params"
        );
        assert_eq!(field("enableIoTLoggingParams"), "enable_iot_logging_params");
    }

    #[test]
    fn variants() {
        assert_eq!(
            variant("UPDATE_DEVICE_CERTIFICATE"),
            "UpdateDeviceCertificate"
        );
        assert_eq!(variant("DEBUG"), "Debug");
        assert_eq!(variant("1"), "V1");
    }
}
