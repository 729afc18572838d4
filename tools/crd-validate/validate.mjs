// Validates Prometheus Operator resources (PodMonitor, ServiceMonitor,
// PrometheusRule) against the JSON-schema validators that
// @kubernetes-models/prometheus-operator generates from the operator's API
// types: types, required fields and enums. Unknown fields are not rejected
// (the schemas allow them, as the API server prunes them).
//
//   node validate.mjs NODE_MODULES_DIR < resources.json   (a JSON array)
//
// Prints one line per resource; exits 1 when any fails, 2 on bad input.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.argv[2];
if (!modules) {
  console.error("usage: node validate.mjs NODE_MODULES_DIR < resources.json");
  process.exit(2);
}
const v1 = await import(
  pathToFileURL(join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js")).href
);
const docs = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const doc of docs) {
  const what = `${doc.kind}/${doc.metadata?.name}`;
  const Model = doc.apiVersion === "monitoring.coreos.com/v1" ? v1[doc.kind] : undefined;
  if (!Model) {
    console.log(`FAIL ${what}: no schema for ${doc.apiVersion} ${doc.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`PASS ${what}`);
  } catch (e) {
    console.log(`FAIL ${what}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
