//! CRC-32C (Castagnoli), the checksum of TensorBoard's record framing, and its "masked" form.
//!
//! The table-driven form processes one byte per step with a 256-entry table computed at compile
//! time from the reflected polynomial `0x82F63B78`. Masking (rotate right by 15, add a constant)
//! is what TensorFlow's record writer stores, so that a CRC of data that itself contains CRCs
//! does not degenerate.

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82F6_3B78;

/// The constant TensorFlow adds to a rotated CRC when masking it.
const MASK_DELTA: u32 = 0xA282_EAD8;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// The CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// The masked CRC-32C of `data`, as stored in TensorFlow record files.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    mask(crc32c(data))
}

/// Masks a CRC: rotate right by 15 bits and add the constant `0xA282_EAD8` (wrapping).
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Undoes [`mask`].
pub fn unmask(masked: u32) -> u32 {
    masked.wrapping_sub(MASK_DELTA).rotate_left(15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_check_value() {
        // The check value of CRC-32C for the ASCII digits 1..9 (RFC 3720, appendix B.4 lists it
        // among the iSCSI test vectors; every CRC catalogue gives 0xE3069283).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        // RFC 3720 B.4: 32 bytes of 0xFF.
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    }

    // The definition is spelled out with shifts on purpose, to check `rotate_right` against it.
    #[allow(clippy::manual_rotate)]
    #[test]
    fn mask_round_trips_and_matches_its_definition() {
        for crc in [0u32, 1, 0xE306_9283, u32::MAX] {
            assert_eq!(unmask(mask(crc)), crc);
            let by_hand = ((crc >> 15) | (crc << 17)).wrapping_add(0xA282_EAD8);
            assert_eq!(mask(crc), by_hand);
        }
    }
}
