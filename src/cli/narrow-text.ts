/**
 * Text whose terminal width is its length, measured without string-width (scripts/build-front.mjs):
 * printable ASCII, Latin-1 and Latin Extended-A letters and signs, and General Punctuation (`…`,
 * `—`, `–`, quotes), leaving out what string-width measures otherwise: the soft hyphen (U+00AD,
 * zero width), `©` `®` `‼` `⁉` (emoji, 2 columns in string-width 7), line and paragraph
 * separators and the bidirectional and invisible format characters (U+2028–U+202E, U+205F on).
 * Each of these characters is a grapheme cluster of its own next to any other of them, and one
 * column wide, in every copy of string-width the help layout uses (test/cli/front.test.ts checks
 * every character next to every other against them); anything else is measured by string-width,
 * whose set-up builds an Intl.Segmenter and Unicode property regexps (ICU data, ~16 ms).
 */
export const NARROW_TEXT = /^[\u0020-\u007E\u00A0-\u00A8\u00AA-\u00AC\u00AF-\u017F\u2010-\u2027\u2030-\u203B\u203D-\u2048\u204A-\u205E]*$/;
