// Validates custom resources against the published schemas of their CRDs, offline: the
// @kubernetes-models packages carry validators generated from the upstream CRD manifests.
//
//   node validate-crds.mjs NODE_MODULES_DIR < documents.json
//
// stdin: a JSON array of {source, document}. Prints one line per problem and exits 1 when
// there is any, including a kind no installed package knows (never passed unchecked).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const PACKAGES = {
  "argoproj.io": "@kubernetes-models/argo-cd",
  "external-secrets.io": "@kubernetes-models/external-secrets",
  "keda.sh": "@kubernetes-models/keda",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

const modules = process.argv[2];
const items = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
let checked = 0;
for (const { source, document } of items) {
  const where = `${source}: ${document.kind} ${document.metadata?.name ?? "?"}`;
  const [group, version] = String(document.apiVersion).split("/");
  const pkg = PACKAGES[group];
  if (!pkg || !version) {
    problems.push(`${where}: no published schema known for apiVersion ${document.apiVersion}`);
    continue;
  }
  let api;
  try {
    api = await import(pathToFileURL(join(modules, pkg, group, version, "index.js")).href);
  } catch (e) {
    problems.push(`${where}: ${pkg} has no ${group}/${version} (${e.message})`);
    continue;
  }
  const Model = api[document.kind];
  if (typeof Model !== "function") {
    problems.push(`${where}: ${pkg} has no kind ${document.kind} in ${group}/${version}`);
    continue;
  }
  try {
    new Model(document).validate();
    checked += 1;
  } catch (e) {
    problems.push(`${where}: ${e.message}`);
  }
}
for (const p of problems) console.log(p);
console.log(`${checked} checked, ${problems.length} problems`);
process.exit(problems.length === 0 ? 0 : 1);
