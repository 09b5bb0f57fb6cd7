// node validate.mjs FILE: parse an AsyncAPI document with the official parser (Avro payloads
// included) and print its diagnostics as JSON: [{severity, code, message, path}]; severity 0 = error.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";
import { AvroSchemaParser } from "@asyncapi/avro-schema-parser";

const parser = new Parser();
parser.registerSchemaParser(AvroSchemaParser());
const { document, diagnostics } = await parser.parse(readFileSync(process.argv[2], "utf8"));
const out = diagnostics.map((d) => ({ severity: d.severity, code: String(d.code), message: d.message, path: d.path }));
if (document === undefined && !out.some((d) => d.severity === 0)) {
  out.push({ severity: 0, code: "no-document", message: "the parser returned no document", path: [] });
}
process.stdout.write(JSON.stringify(out));
