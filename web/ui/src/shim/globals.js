// Globals Node code expects: Buffer (feross/buffer) and a minimal process.
import { Buffer } from 'buffer';
export { Buffer };
export const process = { env: {} };
