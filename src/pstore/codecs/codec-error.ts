import { BadInputError } from '../../errors.js';
import type { CodecName } from './types.js';

/** A compressed payload could not be decoded by one codec (corrupt, truncated, not this format, or too large). */
export class CodecError extends BadInputError {
  readonly codec: CodecName;
  constructor(codec: CodecName, message: string) {
    super(message);
    this.codec = codec;
  }
}
