/** Defaults of the historical loaders, apart from the loader so the CLI's help shows them cheaply. */

/** Default records per store write (the embedded store reaches ~80k rows/s from 5,000 up). */
export const DEFAULT_LOAD_BATCH = 20_000;
