// Validates rendered Kubernetes manifests (a YAML stream on stdin) against the Kubernetes
// OpenAPI schemas, with the kubernetes-models package from the npm registry, and
// prometheus-operator's objects (PrometheusRule) against its CRDs' schemas
// (@kubernetes-models/prometheus-operator). Prints one line per object; exits 1 if any object
// is invalid or of a kind it has no schema for.
//   node validate.js MODULES_DIR < rendered.yaml
"use strict";
const path = require("path");
const modules = process.argv[2];
const YAML = require(path.join(modules, "yaml"));

function modelFor(apiVersion, kind) {
  // "v1" -> kubernetes-models/v1/Kind; "apps/v1" -> kubernetes-models/apps/v1/Kind;
  // "monitoring.coreos.com/v1" -> @kubernetes-models/prometheus-operator/...
  const models = apiVersion.startsWith("monitoring.coreos.com/")
    ? "@kubernetes-models/prometheus-operator"
    : "kubernetes-models";
  const module = path.join(modules, models, apiVersion, kind);
  return require(module)[kind];
}

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  let failed = 0;
  const documents = YAML.parseAllDocuments(input);
  for (const document of documents) {
    const object = document.toJS();
    if (object === null) continue;
    const name = `${object.kind}/${object.metadata && object.metadata.name}`;
    try {
      const Model = modelFor(object.apiVersion, object.kind);
      new Model(object).validate();
      console.log(`valid ${object.apiVersion} ${name}`);
    } catch (error) {
      failed++;
      console.log(`INVALID ${object.apiVersion} ${name}: ${error.message}`);
    }
  }
  if (documents.length === 0) {
    console.log("INVALID: no objects");
    failed++;
  }
  process.exit(failed === 0 ? 0 : 1);
});
