//! Checksums and number-plan rules that turn a pattern match into a real identifier.

/// Luhn (mod 10) check over ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d.wrapping_sub(b'0'));
        if v > 9 {
            return false;
        }
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// A payment card number: known issuer prefix with a length that issuer uses, and Luhn-valid.
pub fn payment_card(digits: &[u8]) -> bool {
    let n = digits.len();
    if !(13..=19).contains(&n) || !luhn(digits) {
        return false;
    }
    if digits.iter().all(|&d| d == digits[0]) {
        return false;
    }
    let prefix =
        |k: usize| -> u32 { digits.iter().take(k).fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')) };
    let (p1, p2, p3, p4, p6) = (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6));
    match p1 {
        4 => matches!(n, 13 | 16 | 19),                             // Visa
        5 if (51..=55).contains(&p2) => n == 16,                    // Mastercard
        2 if (2221..=2720).contains(&p4) => n == 16,                // Mastercard 2-series
        3 if p2 == 34 || p2 == 37 => n == 15,                       // American Express
        3 if (3528..=3589).contains(&p4) => (16..=19).contains(&n), // JCB
        3 if (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 => (14..=19).contains(&n), // Diners
        6 if p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) => (16..=19).contains(&n), // Discover
        6 if (622126..=622925).contains(&p6) || p2 == 62 => (16..=19).contains(&n),         // UnionPay
        5 | 6 if p2 == 50 || (56..=69).contains(&p2) => (12..=19).contains(&n),             // Maestro
        _ => false,
    }
}

/// IBAN length per country (ISO 13616 registry, SWIFT release of 2025).
fn iban_length(country: &[u8]) -> Option<usize> {
    const TABLE: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BI", 27),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DJ", 27),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FK", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"LY", 25),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MN", 20),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NI", 28),
        (b"NL", 18),
        (b"NO", 15),
        (b"OM", 23),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"RU", 33),
        (b"SA", 24),
        (b"SC", 31),
        (b"SD", 18),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"SO", 23),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
        (b"YE", 30),
    ];
    TABLE.iter().find(|(c, _)| c[..] == *country).map(|&(_, n)| n)
}

/// Expected IBAN length for the two-letter country code at the start of `compact`.
pub fn iban_expected_len(compact: &[u8]) -> Option<usize> {
    iban_length(compact.get(..2)?)
}

/// Full IBAN check on an upper-case string without spaces: country, length, mod-97 = 1.
pub fn iban(compact: &[u8]) -> bool {
    if iban_expected_len(compact) != Some(compact.len()) {
        return false;
    }
    if !compact.iter().all(u8::is_ascii_alphanumeric) || !compact[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut rem = 0u32;
    for &c in compact[4..].iter().chain(&compact[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// French social security number (NIR): 13 characters + 2-digit key, `key = 97 - (n mod 97)`.
/// `compact` is 15 characters without spaces; Corsican departments `2A`/`2B` count as 19/18.
pub fn fr_nir(compact: &[u8]) -> bool {
    if compact.len() != 15 {
        return false;
    }
    if !matches!(compact[0], b'1' | b'2' | b'3' | b'4' | b'7' | b'8') {
        return false;
    }
    let month = u32::from(compact[3].wrapping_sub(b'0')) * 10 + u32::from(compact[4].wrapping_sub(b'0'));
    if !(1..=12).contains(&month) && !(20..=42).contains(&month) && !(50..=99).contains(&month) {
        return false;
    }
    // Corsican departments 2A and 2B are read as 19 and 18 for the key.
    let mut body = [0u8; 13];
    body.copy_from_slice(&compact[..13]);
    match &compact[5..7] {
        b"2A" | b"2a" => body[5..7].copy_from_slice(b"19"),
        b"2B" | b"2b" => body[5..7].copy_from_slice(b"18"),
        _ => {}
    }
    if !body.iter().chain(&compact[13..]).all(u8::is_ascii_digit) {
        return false;
    }
    let n = body.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    let key = u64::from(compact[13] - b'0') * 10 + u64::from(compact[14] - b'0');
    key == 97 - (n % 97)
}

/// US social security number parts: area not 000/666/9xx, group not 00, serial not 0000.
pub fn us_ssn(area: u32, group: u32, serial: u32) -> bool {
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
        // Numbers published in advertising and never issued.
        && !(area == 78 && group == 5 && serial == 1120)
        && !(area == 123 && group == 45 && serial == 6789)
}

/// Calling codes that exist (ITU-T E.164), 1 to 3 digits; `digits` start after the `+`.
pub fn calling_code_len(digits: &[u8]) -> Option<usize> {
    let d = |i: usize| digits.get(i).map(|c| c.wrapping_sub(b'0'));
    let one = d(0)?;
    if one == 1 || one == 7 {
        return Some(1);
    }
    let two = one * 10 + d(1)?;
    const TWO: &[u8] = &[
        20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56, 57,
        58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
    ];
    if TWO.contains(&two) {
        return Some(2);
    }
    let three = u16::from(two) * 10 + u16::from(d(2)?);
    // Three-digit codes live in the zones 21x–29x, 35x–38x, 42x, 50x, 59x, 67x–69x, 85x–89x, 96x–99x.
    let ok = matches!(
        three / 10,
        21..=29 | 35 | 37 | 38 | 42 | 50 | 59 | 67 | 68 | 69 | 85 | 87 | 88 | 96 | 97 | 99
    ) && !matches!(three, 210 | 214 | 215 | 217 | 219 | 259 | 280..=289 | 292..=296 | 801..=809);
    ok.then_some(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_known_values() {
        assert!(luhn(b"4111111111111111"));
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"4111111111111112"));
    }

    #[test]
    fn cards_need_issuer_and_length() {
        assert!(payment_card(b"4111111111111111"));
        assert!(payment_card(b"5555555555554444"));
        assert!(payment_card(b"378282246310005"));
        assert!(payment_card(b"6011111111111117"));
        assert!(payment_card(b"2223003122003222"));
        assert!(!payment_card(b"0000000000000000"), "all zeros is Luhn-valid but not a card");
        assert!(!payment_card(b"1234567812345670"), "Luhn-valid, no issuer starts with 1");
    }

    #[test]
    fn iban_mod97() {
        assert!(iban(b"FR1420041010050500013M02606"));
        assert!(iban(b"DE89370400440532013000"));
        assert!(iban(b"GB29NWBK60161331926819"));
        assert!(!iban(b"DE89370400440532013001"));
        assert!(!iban(b"DE8937040044053201300"), "wrong length");
    }

    #[test]
    fn nir_key_including_corsica() {
        // 1 85 05 78 006 084 + key 91
        assert!(fr_nir(b"185057800608491"));
        assert!(!fr_nir(b"185057800608492"));
        // Corsica 2A: body read as 19.
        let body = b"2850319011018";
        let n: u64 = std::str::from_utf8(body).unwrap().parse().unwrap();
        let key = 97 - n % 97;
        let nir = format!("28503{}011018{key:02}", "2A");
        assert!(fr_nir(nir.as_bytes()), "{nir}");
    }

    #[test]
    fn ssn_rules() {
        assert!(us_ssn(536, 22, 1234));
        assert!(!us_ssn(0, 22, 1234));
        assert!(!us_ssn(666, 22, 1234));
        assert!(!us_ssn(912, 22, 1234));
        assert!(!us_ssn(536, 0, 1234));
        assert!(!us_ssn(536, 22, 0));
    }

    #[test]
    fn calling_codes() {
        assert_eq!(calling_code_len(b"33612345678"), Some(2));
        assert_eq!(calling_code_len(b"14155552671"), Some(1));
        assert_eq!(calling_code_len(b"353871234567"), Some(3));
        assert_eq!(calling_code_len(b"2801234567"), None);
    }
}
