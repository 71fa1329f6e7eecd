/**
 * Text from outside (LiteLLM logs, a chain, a usage API) made safe to print on a terminal: any API caller chooses
 * fields such as `end_user` or the call id, and a raw escape sequence in them could retitle the window, recolour or
 * hide lines, move the cursor, or (bidi overrides) show text in another order than it is stored.
 *
 * `terminalSafe` removes, in this order:
 * - escape sequences whole: CSI (`ESC [` ... final byte, or the 8-bit CSI U+009B), string sequences with their
 *   payload (OSC `ESC ]`, DCS `ESC P`, SOS `ESC X`, PM `ESC ^`, APC `ESC _`, or their 8-bit forms, up to BEL or ST;
 *   unterminated: to the end of the text) and two-byte escapes (`ESC` + one character);
 * - every other C0 control (U+0000-U+001F, tab and newline included: a field is printed on one line), DEL and the
 *   C1 controls (U+0080-U+009F);
 * - bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069).
 * Printable Unicode (accents, CJK, emoji) is kept as it is.
 */

// String sequences (OSC, DCS, SOS, PM, APC), 7-bit or 8-bit introducer, ended by BEL, ST (ESC \ or U+009C) or the end.
const STRING_SEQUENCE = /(?:\u001b[\]PX^_]|[\u0090\u0098\u009d\u009e\u009f])[\s\S]*?(?:\u0007|\u001b\\|\u009c|$)/g;
// CSI: introducer, parameter bytes, intermediate bytes, one final byte (a missing final byte: to the end).
const CSI = /(?:\u001b\[|\u009b)[\u0030-\u003f]*[\u0020-\u002f]*(?:[\u0040-\u007e]|$)/g;
// Any other escape: ESC, intermediate bytes, one final character.
const OTHER_ESCAPE = /\u001b[\u0020-\u002f]*[\s\S]?/g;
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `text` without terminal control sequences, control characters or bidi overrides (see above). */
export function terminalSafe(text: string): string {
  return text.replace(STRING_SEQUENCE, "").replace(CSI, "").replace(OTHER_ESCAPE, "").replace(CONTROLS, "");
}
