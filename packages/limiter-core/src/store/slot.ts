/**
 * The Redis Cluster hash slot of a key: CRC16/XMODEM (polynomial 0x1021, init 0) of the key's hash
 * tag (the part between the first `{` and the next `}`, when non-empty) or of the whole key, mod
 * 16384, over the key's UTF-8 bytes: the function of the Redis Cluster specification.
 */

const TABLE = new Uint16Array(256)
for (let i = 0; i < 256; i++) {
  let c = i << 8
  for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff
  TABLE[i] = c
}

/** CRC16/XMODEM of `bytes`. */
export function crc16(bytes: Uint8Array): number {
  let crc = 0
  for (let i = 0; i < bytes.length; i++)
    crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ bytes[i]!) & 0xff] as number)
  return crc
}

const encoder = new TextEncoder()

/** Number of hash slots of a Redis Cluster. */
export const SLOT_COUNT = 16384

/** The hash slot of `key` (hash tags honoured), 0..16383. */
export function keySlot(key: string): number {
  const open = key.indexOf('{')
  if (open !== -1) {
    const close = key.indexOf('}', open + 1)
    if (close > open + 1) key = key.slice(open + 1, close)
  }
  return crc16(encoder.encode(key)) % SLOT_COUNT
}
