import { App } from "cdktf";
import { BakedAmiStack } from "./baked-ami/main";
import { CachedFleetStack } from "./cached-fleet/main";
import { FleetStack } from "./fleet/main";
import { SingleHostStack } from "./single-host/main";

// `cdktf synth` at the repository root (see cdktf.json) synthesizes every example stack.
const app = new App();
new SingleHostStack(app, "single-host");
new FleetStack(app, "fleet");
new CachedFleetStack(app, "cached-fleet");
new BakedAmiStack(app, "baked-ami");
app.synth();
