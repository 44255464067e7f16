//! Sizes as operators write them: `512KB`, `1MB`, `1.5MiB`, `2048`. K, M and G are powers of
//! 1024 with or without the `i`, as the Worker's thresholds are (its "1 MB" is 1,048,576 bytes).

/// Parses a size into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (try 512KB, 1MB or 1.5MiB)"))?;
    let factor = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => 1024.0,
        "M" | "MB" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{unit}' (use B, KB, MB, GB)"
            ))
        }
    };
    Ok((number * factor).round() as u64)
}

/// `1.5 MB`, `512 KB`, `17 B`.
pub fn format_size(bytes: u64) -> String {
    let bytes_f = bytes as f64;
    if bytes_f >= 1024.0 * 1024.0 {
        format!("{:.1} MB", bytes_f / (1024.0 * 1024.0))
    } else if bytes_f >= 1024.0 {
        format!("{:.0} KB", bytes_f / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_the_forms_operators_write() {
        assert_eq!(parse_size("512KB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MB"), Ok(1024 * 1024));
        assert_eq!(parse_size("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size(" 2 gb "), Ok(2 * 1024 * 1024 * 1024));
        assert!(parse_size("big").is_err());
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn sizes_print_in_the_largest_fitting_unit() {
        assert_eq!(format_size(1_572_864), "1.5 MB");
        assert_eq!(format_size(512 * 1024), "512 KB");
        assert_eq!(format_size(17), "17 B");
    }
}
