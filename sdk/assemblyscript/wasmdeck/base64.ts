// Base64 (RFC 4648, standard alphabet, with padding): binary data travels
// through the host API as base64 text in `*_base64` fields.

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export namespace Base64 {
  export function encode(data: Uint8Array): string {
    const n = data.length;
    const out = new Array<string>();
    let i = 0;
    for (; i + 2 < n; i += 3) {
      const v = (<i32>data[i] << 16) | (<i32>data[i + 1] << 8) | <i32>data[i + 2];
      out.push(
        ALPHABET.charAt((v >> 18) & 63) +
          ALPHABET.charAt((v >> 12) & 63) +
          ALPHABET.charAt((v >> 6) & 63) +
          ALPHABET.charAt(v & 63),
      );
    }
    if (i < n) {
      const two = i + 1 < n;
      const v = (<i32>data[i] << 16) | (two ? <i32>data[i + 1] << 8 : 0);
      out.push(
        ALPHABET.charAt((v >> 18) & 63) +
          ALPHABET.charAt((v >> 12) & 63) +
          (two ? ALPHABET.charAt((v >> 6) & 63) : "=") +
          "=",
      );
    }
    return out.join("");
  }

  // The bytes, or null if `text` is not valid base64.
  export function decode(text: string): Uint8Array | null {
    let n = text.length;
    if (n % 4 != 0) return null;
    let pad = 0;
    if (n > 0 && text.charCodeAt(n - 1) == 0x3d) pad++;
    if (n > 1 && text.charCodeAt(n - 2) == 0x3d) pad++;
    const out = new Uint8Array((n / 4) * 3 - pad);
    let k = 0;
    for (let i = 0; i < n; i += 4) {
      let v = 0;
      for (let j = 0; j < 4; j++) {
        const c = text.charCodeAt(i + j);
        let d = sextet(c);
        if (d < 0) {
          if (c != 0x3d || i + 4 < n || j < 4 - pad) return null;
          d = 0;
        }
        v = (v << 6) | d;
      }
      out[k++] = <u8>(v >> 16);
      if (k < out.length) out[k++] = <u8>(v >> 8);
      if (k < out.length) out[k++] = <u8>v;
    }
    return out;
  }
}

function sextet(c: i32): i32 {
  if (c >= 65 && c <= 90) return c - 65;
  if (c >= 97 && c <= 122) return c - 71;
  if (c >= 48 && c <= 57) return c + 4;
  if (c == 0x2b) return 62;
  if (c == 0x2f) return 63;
  return -1;
}
