//! The wall clock, in one place: Unix seconds for certificate and assertion times, and RFC 3339
//! for what people read. Every module takes its time from here, so tests and logs agree.

/// RFC 3339 UTC time for messages (`2026-11-30T11:42:43Z`); outside the years 0000–9999, the
/// number itself.
pub fn fmt_time(unix: i64) -> String {
    let mut out = String::with_capacity(20);
    write_time(&mut out, unix, None);
    out
}

/// RFC 3339 UTC time with milliseconds (`2026-11-30T11:42:43.081Z`), now.
pub fn now_rfc3339_millis() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = String::with_capacity(24);
    write_time(
        &mut out,
        since.as_secs() as i64,
        Some(since.subsec_millis()),
    );
    out
}

/// Appends `unix` as RFC 3339 UTC, with `millis` when given. Written by hand: an assertion
/// carries three of these and the audit record one, and the general formatter cost ten times
/// more (bench/README.md, issue 18).
fn write_time(out: &mut String, unix: i64, millis: Option<u32>) {
    const MIN: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if !(MIN..=MAX).contains(&unix) {
        out.push_str(itoa::Buffer::new().format(unix));
        return;
    }
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let mut b = *b"0000-00-00T00:00:00";
    let mut put = |at: usize, v: u32, width: usize| {
        let mut v = v;
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, y as u32, 4);
    put(5, m, 2);
    put(8, d, 2);
    put(11, (secs / 3600) as u32, 2);
    put(14, (secs / 60 % 60) as u32, 2);
    put(17, (secs % 60) as u32, 2);
    out.push_str(std::str::from_utf8(&b).unwrap_or_default());
    if let Some(ms) = millis {
        out.push('.');
        let ms = ms.min(999);
        for digit in [ms / 100, ms / 10 % 10, ms % 10] {
            out.push(char::from(b'0' + digit as u8));
        }
    }
    out.push('Z');
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Current Unix time in seconds, with its fraction.
pub fn now_unix_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Current Unix time in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the `time` crate writes, the reference.
    fn reference(unix: i64) -> String {
        ::time::OffsetDateTime::from_unix_timestamp(unix)
            .ok()
            .and_then(|t| {
                t.format(&::time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| unix.to_string())
    }

    #[test]
    fn times_are_written_as_the_time_crate_writes_them() {
        let edges = [
            0,
            -1,
            951_782_400,   // 2000-02-29
            4_107_542_400, // 2100-03-01
            1_795_000_000,
            -62_167_219_200,
            -62_167_219_201,
            253_402_300_799,
            253_402_300_800,
        ];
        // And a day and a few seconds apart across 10,000 years, both sides of 1970.
        let spread = (-31_000i64..31_000).map(|i| i * 8_000_000 + i.rem_euclid(86_400));
        for t in edges.into_iter().chain(spread) {
            assert_eq!(fmt_time(t), reference(t), "{t}");
        }
    }

    #[test]
    fn milliseconds_are_three_digits_before_the_z() {
        let mut s = String::new();
        write_time(&mut s, 1_795_000_000, Some(7));
        assert_eq!(s, reference(1_795_000_000).replace('Z', ".007Z"));
        let now = now_rfc3339_millis();
        assert_eq!(
            (now.len(), &now[19..20], &now[23..]),
            (24, ".", "Z"),
            "{now}"
        );
    }
}
