//! Request-date parsing/formatting and the freshness window.

use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::error::SigV4Error;

/// Parses `yyyyMMdd'T'HHmmss'Z'` strictly.
///
/// Hand-rolled because the signature covers this exact text: any leniency
/// (signs, extra digits, offsets) would let two spellings share one meaning.
pub(crate) fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let day = u8::try_from(num(6..8)?).ok()?;
    let hour = u8::try_from(num(9..11)?).ok()?;
    let minute = u8::try_from(num(11..13)?).ok()?;
    let second = u8::try_from(num(13..15)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Parses a `Date` header: RFC 1123 (`Sun, 30 Aug 2015 12:36:00 GMT`), or the
/// ISO basic format some clients put there too.
pub(crate) fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let rfc1123 = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(s, rfc1123)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
        .or_else(|| parse_amz_date(s))
}

/// Formats as `yyyyMMdd'T'HHmmss'Z'` (UTC).
///
/// Written digit by digit rather than with `format!`: it runs for every request, and
/// the formatting machinery was a visible share of parsing the authentication.
pub(crate) fn format_amz_date(t: OffsetDateTime) -> String {
    let t = t.checked_to_offset(UtcOffset::UTC).unwrap_or(t);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        // Unreachable from `parse_amz_date`, possible from a `Date` header or a
        // shifted time in an error message; `{:04}` keeps the sign and all digits.
        return format!(
            "{year:04}{:02}{:02}T{:02}{:02}{:02}Z",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
    }
    let mut out = [0u8; 16];
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year.unsigned_abs());
    put(4, 2, u32::from(u8::from(t.month())));
    put(6, 2, u32::from(t.day()));
    put(9, 2, u32::from(t.hour()));
    put(11, 2, u32::from(t.minute()));
    put(13, 2, u32::from(t.second()));
    out[8] = b'T';
    out[15] = b'Z';
    // Only ASCII digits and letters were written.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// Which window a request date must fall in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Freshness {
    /// Header auth: `|now - date| <= skew`.
    Skew,
    /// Presigned: `date <= now + skew` and `now <= date + expires`.
    Presigned { expires_secs: u32 },
}

/// Checks the request date against the server clock.
///
/// Compares differences rather than shifting `now`/`date`, so an absurd skew
/// or a date near year 9999 cannot overflow.
pub(crate) fn check_freshness(
    window: Freshness,
    date: OffsetDateTime,
    now: OffsetDateTime,
    max_skew: std::time::Duration,
) -> Result<(), SigV4Error> {
    let skew = time::Duration::try_from(max_skew).unwrap_or(time::Duration::MAX);
    if date - now > skew {
        return Err(SigV4Error::SignatureNotYetCurrent {
            date: format_amz_date(date),
            latest: format_shifted(now.checked_add(skew)),
            now: format_amz_date(now),
            skew: format_skew(max_skew),
        });
    }
    match window {
        Freshness::Skew if now - date > skew => Err(SigV4Error::SignatureExpired {
            date: format_amz_date(date),
            earliest: format_shifted(now.checked_sub(skew)),
            now: format_amz_date(now),
            skew: format_skew(max_skew),
        }),
        Freshness::Presigned { expires_secs }
            if now - date > time::Duration::seconds(i64::from(expires_secs)) =>
        {
            let expires = time::Duration::seconds(i64::from(expires_secs));
            Err(SigV4Error::PresignedExpired {
                date: format_amz_date(date),
                expires: expires_secs,
                expired_at: format_shifted(date.checked_add(expires)),
                now: format_amz_date(now),
            })
        }
        _ => Ok(()),
    }
}

fn format_shifted(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| "(out of range)".to_owned(), format_amz_date)
}

/// `15 min` for whole minutes, else `N sec`, as in AWS's messages.
pub(crate) fn format_skew(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (mins, 0) => format!("{mins} min"),
        _ => format!("{secs} sec"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn amz_date_round_trips() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(t, datetime!(2015-08-30 12:36:00 UTC));
        assert_eq!(format_amz_date(t), "20150830T123600Z");
    }

    #[test]
    fn amz_date_formatting_matches_format_macro() {
        for t in [
            datetime!(0000-01-01 00:00:00 UTC),
            datetime!(0999-12-31 23:59:59 UTC),
            datetime!(2026-02-28 09:05:07 UTC),
            datetime!(9999-12-31 23:59:59 UTC),
            datetime!(2026-02-28 09:05:07 +02:00),
            datetime!(-0001-01-01 00:00:00 UTC),
        ] {
            let u = t.to_offset(UtcOffset::UTC);
            let expected = format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                u.year(),
                u8::from(u.month()),
                u.day(),
                u.hour(),
                u.minute(),
                u.second()
            );
            assert_eq!(format_amz_date(t), expected);
        }
    }

    #[test]
    fn amz_date_rejects_near_misses() {
        for bad in [
            "",
            "20150830T123600",
            "20150830T123600z",
            "20150830 123600Z",
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
            "20150230T123600Z",
            "20150830T246000Z",
            "20150830T123660Z",
            "+0150830T123600Z",
            "2015083aT123600Z",
            "20150830T123600Z ",
            "２0150830T123600Z",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn http_date_accepts_rfc1123_and_basic() {
        let expected = datetime!(2015-08-30 12:36:00 UTC);
        assert_eq!(
            parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"),
            Some(expected)
        );
        assert_eq!(parse_http_date("20150830T123600Z"), Some(expected));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn freshness_handles_extremes_without_overflow() {
        let far_future = parse_amz_date("99991231T235959Z").unwrap();
        let far_past = parse_amz_date("00000101T000000Z").unwrap();
        let huge = std::time::Duration::from_secs(u64::MAX);
        for (date, now) in [(far_future, far_past), (far_past, far_future)] {
            for skew in [huge, std::time::Duration::ZERO] {
                let _ = check_freshness(Freshness::Skew, date, now, skew);
                let window = Freshness::Presigned {
                    expires_secs: 604_800,
                };
                let _ = check_freshness(window, date, now, skew);
            }
        }
    }

    #[test]
    fn skew_formatting() {
        assert_eq!(format_skew(std::time::Duration::from_secs(900)), "15 min");
        assert_eq!(format_skew(std::time::Duration::from_secs(90)), "90 sec");
    }
}
