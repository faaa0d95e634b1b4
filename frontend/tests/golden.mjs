// OpenCV's answers for the same inputs, computed fresh by `make test-js` (python -m tests.js_golden),
// so the JS ports are checked against cv2 itself and no generated file is committed.
import { readFileSync } from "node:fs";

const goldenPath = process.env.TAMSCOPE_GOLDEN || new URL("../../build/golden-cv2.json", import.meta.url);
let data;
try {
  data = JSON.parse(readFileSync(goldenPath, "utf8"));
} catch (err) {
  throw new Error(`cannot read the cv2 golden data at ${goldenPath} (${err.code || err.message}): run \`make test-js\``);
}
export const golden = data;
