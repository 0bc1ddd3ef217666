//! Time, independent of the library: civil date <-> days (Howard Hinnant's algorithms), the
//! contract's timestamp rendering, and the date filter spellings the list endpoint accepts.

use super::rng::Rng;

pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The contract's rendering: RFC 3339 UTC with exactly three fraction digits.
pub fn fmt_ms(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, f) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f:03}Z")
}

/// 2026-03-14T00:00:00Z; the data spans the three days from there.
pub fn base_ms() -> i64 {
    days_from_civil(2026, 3, 14) * 86_400_000
}

/// A date filter value for the instant `ms`, in one of the accepted spellings; returns the
/// text and the instant it means.
pub fn date_param(rng: &mut Rng, ms: i64) -> (String, i64) {
    match rng.range(0, 3) {
        0 => {
            // Bare date: midnight UTC.
            let day = ms.div_euclid(86_400_000);
            let (y, m, d) = civil_from_days(day);
            (format!("{y:04}-{m:02}-{d:02}"), day * 86_400_000)
        }
        1 => {
            // Whole seconds, `Z`.
            let s = ms.div_euclid(1000) * 1000;
            (fmt_ms(s).replace(".000Z", "Z"), s)
        }
        2 => (fmt_ms(ms), ms),
        _ => {
            // The same instant written with a +02:00 offset.
            let local = fmt_ms(ms + 2 * 3_600_000);
            (local.replace('Z', "+02:00"), ms)
        }
    }
}
