//! Framing checks the codec does not make, on the bytes of the next
//! packet before it is decoded: 3.1.1's reserved fixed-header flags, an
//! MQTT 5 CONNECT told apart by its protocol level, the fixed header's
//! lengths, and an MQTT 5 property given twice.

/// MQTT 3.1.1 §2.2.2: the fixed header's low four bits are reserved and
/// fixed for every packet but PUBLISH — `0010` for PUBREL, SUBSCRIBE and
/// UNSUBSCRIBE, `0000` for the rest; anything else is malformed and the
/// connection must be closed (§3.8.1 for SUBSCRIBE). The codec does not
/// check this, so the session does, on the first byte of the next packet.
pub fn check_fixed_header_flags(buf: &[u8]) -> Result<(), String> {
    let Some(&first) = buf.first() else {
        return Ok(());
    };
    let (kind, flags) = (first >> 4, first & 0x0F);
    let expected = match kind {
        3 => return Ok(()), // PUBLISH: DUP, QoS, RETAIN
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags == expected {
        return Ok(());
    }
    let name = match kind {
        6 => "PUBREL",
        8 => "SUBSCRIBE",
        10 => "UNSUBSCRIBE",
        _ => "packet",
    };
    Err(format!(
        "{name} (type {kind}) with reserved header flags {flags:#06b}, must be {expected:#06b} (MQTT 3.1.1 §2.2.2)"
    ))
}

/// A level-5 CONNECT at the start of `buf`: `0x10`, the remaining length,
/// then protocol name `MQTT` and level 5.
pub fn is_v5_connect(buf: &[u8]) -> bool {
    if buf.first() != Some(&0x10) {
        return false;
    }
    let Some((header, _)) = fixed_header(buf) else {
        return false;
    };
    buf.get(header..header + 7) == Some(&[0, 4, b'M', b'Q', b'T', b'T', 5][..])
}

/// The fixed header's length and the remaining length, when complete and
/// well-formed (at most 4 length bytes).
pub fn fixed_header(buf: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for (i, byte) in buf.iter().skip(1).take(4).enumerate() {
        len |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((i + 2, len));
        }
    }
    None
}

/// A property that appears twice in the packet at the start of `buf` (a
/// protocol error, MQTT 5 §2.2.2.2, but for User Property and a PUBLISH's
/// Subscription Identifier), as `Err(why)`. The packet is complete; only
/// the packets with properties the endpoint reads are checked. Any other
/// malformation is left to the codec.
pub fn duplicate_property(buf: &[u8]) -> Result<(), String> {
    let Some((header, remaining)) = fixed_header(buf) else {
        return Ok(());
    };
    let Some(body) = buf.get(header..header + remaining) else {
        return Ok(());
    };
    let kind = buf[0] >> 4;
    let u16_at = |at: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *body.get(at)?,
            *body.get(at + 1)?,
        ])))
    };
    // Where the properties start in the variable header.
    let start = match kind {
        // CONNECT: name (2 + 4), level, flags, keepalive.
        1 => Some(10),
        // PUBLISH: topic, then a packet id at QoS > 0.
        3 => u16_at(0).map(|t| 2 + t + if buf[0] & 0b0110 != 0 { 2 } else { 0 }),
        // PUBACK: id, reason, properties — when the packet is long enough.
        4 if remaining > 3 => Some(3),
        // SUBSCRIBE, UNSUBSCRIBE: packet id.
        8 | 10 => Some(2),
        // DISCONNECT: reason, properties.
        14 if remaining > 1 => Some(1),
        _ => None,
    };
    let Some(start) = start else {
        return Ok(());
    };
    let Some(rest) = body.get(start..) else {
        return Ok(());
    };
    let Some((len_bytes, props_len)) = fixed_header(&[&[0u8][..], rest].concat()) else {
        return Ok(());
    };
    let len_bytes = len_bytes - 1;
    let Some(props) = rest.get(len_bytes..len_bytes + props_len) else {
        return Ok(());
    };
    let mut seen = [false; 64];
    let mut at = 0;
    while at < props.len() {
        let id = props[at];
        at += 1;
        let size = match id {
            1 | 23 | 25 | 36 | 37 | 40 | 41 | 42 => 1,
            19 | 33 | 34 | 35 => 2,
            2 | 17 | 24 | 39 => 4,
            11 => {
                let varint = props.get(at..).unwrap_or(&[]);
                let mut n = 0;
                while n < 4 && varint.get(n).is_some_and(|b| b & 0x80 != 0) {
                    n += 1;
                }
                n + 1
            }
            3 | 8 | 9 | 18 | 21 | 22 | 26 | 28 | 31 => {
                let Some(n) = props.get(at..at + 2) else {
                    return Ok(());
                };
                2 + usize::from(u16::from_be_bytes([n[0], n[1]]))
            }
            38 => {
                let Some(k) = props.get(at..at + 2) else {
                    return Ok(());
                };
                let k = 2 + usize::from(u16::from_be_bytes([k[0], k[1]]));
                let Some(v) = props.get(at + k..at + k + 2) else {
                    return Ok(());
                };
                k + 2 + usize::from(u16::from_be_bytes([v[0], v[1]]))
            }
            // Unknown: the codec refuses it.
            _ => return Ok(()),
        };
        let repeatable = id == 38 || (id == 11 && kind == 3);
        let slot = usize::from(id);
        if seen[slot] && !repeatable {
            return Err(format!(
                "property {id:#04x} appears twice in one packet (MQTT 5 §2.2.2.2)"
            ));
        }
        seen[slot] = true;
        at += size;
    }
    Ok(())
}
