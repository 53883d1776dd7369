// tuf-js logs through debug; the browser build logs nothing.
export default function debug() { return () => {}; }
