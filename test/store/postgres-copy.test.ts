/**
 * The store contract suite on PostgreSQL with COPY into a staging table + INSERT … SELECT (the loading
 * method that benchmarked slower, kept selectable with `insertMethod: "copy"`).
 */
import { storeContract } from "./contract.js";
import { postgresHarness } from "./pg.js";

storeContract("postgres (copy)", postgresHarness("copy"));
