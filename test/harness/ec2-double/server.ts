import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { errorResponse, filters, globMatch, list, parseParams, response, type Params, type XmlValue } from "./query";

/** An AMI in the double's catalogue. */
export interface Image {
  imageId: string;
  name: string;
  ownerId: string;
  architecture: "x86_64" | "arm64";
  creationDate: string;
  state?: "available" | "pending";
}

/** The double's whole state: plain data that tests set up and inspect. */
export interface Ec2Model {
  images: Image[];
  /** What each instance printed on its serial console, by instance ID. */
  consoleOutputs: Record<string, string>;
  /** Every action called, in order: what the provider and the SDK asked for. */
  calls: string[];
}

/** An action's result: the response body, or an EC2 error. */
type Handler = (params: Params, model: Ec2Model) => Record<string, XmlValue>;

export class Ec2Error extends Error {
  constructor(readonly code: string, message: string, readonly status = 400) {
    super(message);
  }
}

const imageFilters: Record<string, (image: Image) => string> = {
  name: (i) => i.name,
  architecture: (i) => i.architecture,
  state: (i) => i.state ?? "available",
  "owner-id": (i) => i.ownerId,
  "image-id": (i) => i.imageId,
};

/** One handler per action, reading the model; grows with the actions tests need. */
const handlers: Record<string, Handler> = {
  DescribeImages(params, model) {
    const owners = list(params, "Owner");
    const ids = list(params, "ImageId");
    let images = model.images.filter((i) => (owners.length === 0 || owners.includes(i.ownerId)) && (ids.length === 0 || ids.includes(i.imageId)));
    for (const [name, values] of filters(params)) {
      const field = imageFilters[name];
      if (field === undefined) throw new Ec2Error("InvalidParameterValue", `The filter '${name}' is invalid`);
      images = images.filter((i) => values.some((v) => globMatch(v, field(i))));
    }
    return {
      imagesSet: images.map((i) => ({
        imageId: i.imageId,
        imageLocation: `${i.ownerId}/${i.name}`,
        imageState: i.state ?? "available",
        imageOwnerId: i.ownerId,
        creationDate: i.creationDate,
        isPublic: true,
        architecture: i.architecture,
        imageType: "machine",
        name: i.name,
        rootDeviceType: "ebs",
        rootDeviceName: "/dev/xvda",
        virtualizationType: "hvm",
        hypervisor: "xen",
        enaSupport: true,
        sriovNetSupport: "simple",
        bootMode: "uefi-preferred",
        blockDeviceMapping: [{ deviceName: "/dev/xvda", ebs: { volumeSize: 20, volumeType: "gp3", deleteOnTermination: true, encrypted: false } }],
      })),
    };
  },
  GetConsoleOutput(params, model) {
    const instanceId = params.get("InstanceId") ?? "";
    const output = model.consoleOutputs[instanceId];
    if (output === undefined) throw new Ec2Error("InvalidInstanceID.NotFound", `The instance ID '${instanceId}' does not exist`);
    return { instanceId, timestamp: new Date().toISOString(), output: Buffer.from(output).toString("base64") };
  },
  GetInstanceUefiData(params) {
    return { instanceId: params.get("InstanceId"), uefiData: "" };
  },
};

export interface Ec2Double {
  readonly endpoint: string;
  readonly model: Ec2Model;
  close(): Promise<void>;
}

/** Starts the double on 127.0.0.1 at a free port. */
export async function startEc2Double(model: Partial<Ec2Model> = {}): Promise<Ec2Double> {
  const state: Ec2Model = { images: [], consoleOutputs: {}, calls: [], ...model };
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const requestId = randomUUID();
      const params = parseParams(body, req.url ?? "/");
      const action = params.get("Action") ?? "";
      state.calls.push(action);
      res.setHeader("Content-Type", "text/xml;charset=UTF-8");
      const handler = handlers[action];
      try {
        if (handler === undefined) throw new Ec2Error("InvalidAction", `The EC2 test double does not implement ${action}`);
        res.end(response(action, handler(params, state), requestId));
      } catch (err) {
        const ec2 = err instanceof Ec2Error ? err : new Ec2Error("InternalError", String(err), 500);
        res.statusCode = ec2.status;
        res.end(errorResponse(ec2.code, ec2.message, requestId));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    model: state,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
