// {{name}}: a minimal wasmdeck plugin in AssemblyScript. Build it with `wasmdeck build`.
import { Plugin, Request, output } from "wasmdeck";

Plugin.define("{{name}}", "0.1.0", "A minimal wasmdeck plugin")
  .action("hello", "Say hello", hello);

function hello(req: Request): void {
  output("hello from {{name}}");
}
