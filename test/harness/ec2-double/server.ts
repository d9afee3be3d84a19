import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { errorResponse, filters, globMatch, list, parseParams, response, type Params, type XmlValue } from "./query";

/**
 * A test double of the EC2 Query API: enough for terraform-provider-aws 5.100 to create, read, update and destroy
 * aws_security_group, aws_key_pair and aws_instance and to read aws_ami, and for our SDK calls (DescribeImages,
 * GetConsoleOutput). State is plain data (Ec2Model); every action is one handler. Instances can be backed by real
 * machines through `launch` (the test world's namespaced target hosts).
 */

export interface Image {
  imageId: string;
  name: string;
  ownerId: string;
  architecture: "x86_64" | "arm64";
  creationDate: string;
  state?: "available" | "pending";
  /** Registered here (RegisterImage): its root volume comes from this snapshot. */
  rootSnapshotId?: string;
  description?: string;
  bootMode?: string;
  imdsSupport?: string;
  rootVolume?: { size: number; type: string; deleteOnTermination: boolean };
}

/** An EBS snapshot made by ImportSnapshot: the imported disk, converted to a raw disk file on this machine. */
export interface Snapshot {
  snapshotId: string;
  importTaskId: string;
  description: string;
  /** The raw disk. */
  file: string;
  /** Size in GiB, as EBS counts it. */
  volumeSize: number;
  /** Bytes of the object read from S3 (what was uploaded). */
  objectBytes: number;
  userBucket: { bucket: string; key: string };
  format: string;
  startTime: string;
}

export interface Tag {
  key: string;
  value: string;
}

export interface Permission {
  protocol: string;
  fromPort: number;
  toPort: number;
  cidrs: string[];
  ipv6Cidrs: string[];
  description?: string;
}

export interface SecurityGroup {
  groupId: string;
  groupName: string;
  description: string;
  vpcId: string;
  ingress: Permission[];
  egress: Permission[];
}

export interface KeyPair {
  keyPairId: string;
  keyName: string;
  publicKey: string;
  fingerprint: string;
}

/** What a launched instance runs on: its addresses, its console, and how to stop it. */
export interface LaunchedMachine {
  privateIp: string;
  publicIp: string;
  consoleOutput: string;
  stop(): Promise<void>;
}

export interface Instance {
  instanceId: string;
  imageId: string;
  instanceType: string;
  keyName?: string;
  groupIds: string[];
  state: "pending" | "running" | "shutting-down" | "terminated";
  architecture: string;
  privateIp: string;
  publicIp: string;
  volumeId: string;
  volume: { size: number; type: string; encrypted: boolean; deleteOnTermination: boolean };
  httpTokens: string;
  userData?: string;
  launchTime: string;
  machine?: LaunchedMachine;
}

export interface Ec2Model {
  region: string;
  ownerId: string;
  images: Image[];
  vpc: { vpcId: string; cidrBlock: string };
  securityGroups: SecurityGroup[];
  keyPairs: KeyPair[];
  instances: Instance[];
  /** Tags by resource ID. */
  tags: Record<string, Tag[]>;
  /** What each instance printed on its serial console, for instances without a machine. */
  consoleOutputs: Record<string, string>;
  /**
   * Starts the machine behind a new instance, given the key pair's public key and, for an AMI registered here, the
   * raw disk of its root snapshot (the machine boots what is on it).
   */
  launch?: (publicKey: string | undefined, boot?: { rootDisk: string }) => Promise<LaunchedMachine>;
  snapshots: Snapshot[];
  /** Where ImportSnapshot reads `s3://BUCKET/KEY` (`<s3Endpoint>/BUCKET/KEY`) and where it keeps snapshot disks. */
  s3Endpoint?: string;
  snapshotDir?: string;
  /** Every action called, in order. */
  calls: string[];
}

export class Ec2Error extends Error {
  constructor(readonly code: string, message: string, readonly status = 400) {
    super(message);
  }
}

const execFileAsync = promisify(execFile);

type Handler = (params: Params, model: Ec2Model) => Record<string, XmlValue> | Promise<Record<string, XmlValue>>;

function importTaskDetail(x: Snapshot): XmlValue {
  return {
    description: x.description, diskImageSize: x.objectBytes, format: x.format, progress: "100", snapshotId: x.snapshotId, status: "completed",
    statusMessage: "", userBucket: { s3Bucket: x.userBucket.bucket, s3Key: x.userBucket.key },
  };
}

const id = (prefix: string) => `${prefix}-${randomUUID().replace(/-/g, "").slice(0, 17)}`;
const STATE_CODES = { pending: 0, running: 16, "shutting-down": 32, terminated: 48 } as const;

function tagSet(model: Ec2Model, resourceId: string): XmlValue {
  return (model.tags[resourceId] ?? []).map((t) => ({ key: t.key, value: t.value }));
}

/** TagSpecification.N.ResourceType / .Tag.M.Key|Value for a resource type. */
function tagSpecifications(params: Params, resourceType: string): Tag[] {
  const tags: Tag[] = [];
  for (let i = 1; params.has(`TagSpecification.${i}.ResourceType`); i++) {
    if (params.get(`TagSpecification.${i}.ResourceType`) !== resourceType) continue;
    for (let j = 1; params.has(`TagSpecification.${i}.Tag.${j}.Key`); j++) {
      tags.push({ key: params.get(`TagSpecification.${i}.Tag.${j}.Key`)!, value: params.get(`TagSpecification.${i}.Tag.${j}.Value`) ?? "" });
    }
  }
  return tags;
}

function permissions(params: Params): Permission[] {
  const out: Permission[] = [];
  for (let i = 1; params.has(`IpPermissions.${i}.IpProtocol`); i++) {
    const p = `IpPermissions.${i}`;
    const cidrs: string[] = [];
    let description: string | undefined;
    for (let j = 1; params.has(`${p}.IpRanges.${j}.CidrIp`); j++) {
      cidrs.push(params.get(`${p}.IpRanges.${j}.CidrIp`)!);
      description ??= params.get(`${p}.IpRanges.${j}.Description`);
    }
    const ipv6Cidrs: string[] = [];
    for (let j = 1; params.has(`${p}.Ipv6Ranges.${j}.CidrIpv6`); j++) {
      ipv6Cidrs.push(params.get(`${p}.Ipv6Ranges.${j}.CidrIpv6`)!);
      description ??= params.get(`${p}.Ipv6Ranges.${j}.Description`);
    }
    const protocol = params.get(`${p}.IpProtocol`)!;
    out.push({
      protocol,
      fromPort: Number(params.get(`${p}.FromPort`) ?? (protocol === "-1" ? 0 : 0)),
      toPort: Number(params.get(`${p}.ToPort`) ?? 0),
      cidrs,
      ipv6Cidrs,
      description,
    });
  }
  return out;
}

const samePermission = (a: Permission, b: Permission) =>
  a.protocol === b.protocol && a.fromPort === b.fromPort && a.toPort === b.toPort;

function permissionXml(p: Permission): XmlValue {
  return {
    ipProtocol: p.protocol,
    ...(p.protocol === "-1" ? {} : { fromPort: p.fromPort, toPort: p.toPort }),
    groups: [],
    ipRanges: p.cidrs.map((c) => ({ cidrIp: c, description: p.description })),
    ipv6Ranges: p.ipv6Cidrs.map((c) => ({ cidrIpv6: c, description: p.description })),
    prefixListIds: [],
  };
}

function findGroup(model: Ec2Model, groupId: string | undefined): SecurityGroup {
  const group = model.securityGroups.find((g) => g.groupId === groupId);
  if (!group) throw new Ec2Error("InvalidGroup.NotFound", `The security group '${groupId}' does not exist`);
  return group;
}

function findInstance(model: Ec2Model, instanceId: string | undefined): Instance {
  const instance = model.instances.find((i) => i.instanceId === instanceId);
  if (!instance) throw new Ec2Error("InvalidInstanceID.NotFound", `The instance ID '${instanceId}' does not exist`);
  return instance;
}

function instanceXml(model: Ec2Model, i: Instance): XmlValue {
  const az = `${model.region}a`;
  const privateDns = `ip-${i.privateIp.replace(/\./g, "-")}.${model.region}.compute.internal`;
  const publicDns = i.state === "terminated" ? "" : `ec2-${i.publicIp.replace(/\./g, "-")}.${model.region}.compute.amazonaws.com`;
  const groups = i.groupIds.map((g) => ({ groupId: g, groupName: model.securityGroups.find((s) => s.groupId === g)?.groupName ?? g }));
  const live = i.state !== "terminated";
  return {
    instanceId: i.instanceId,
    imageId: i.imageId,
    instanceState: { code: STATE_CODES[i.state], name: i.state },
    privateDnsName: privateDns,
    dnsName: publicDns,
    keyName: i.keyName,
    amiLaunchIndex: 0,
    instanceType: i.instanceType,
    launchTime: i.launchTime,
    placement: { availabilityZone: az, groupName: "", tenancy: "default" },
    monitoring: { state: "disabled" },
    subnetId: live ? "subnet-double" : undefined,
    vpcId: live ? model.vpc.vpcId : undefined,
    privateIpAddress: live ? i.privateIp : undefined,
    ipAddress: live ? i.publicIp : undefined,
    sourceDestCheck: true,
    groupSet: groups,
    architecture: i.architecture,
    rootDeviceType: "ebs",
    rootDeviceName: "/dev/xvda",
    blockDeviceMapping: live
      ? [{ deviceName: "/dev/xvda", ebs: { volumeId: i.volumeId, status: "attached", attachTime: i.launchTime, deleteOnTermination: i.volume.deleteOnTermination } }]
      : [],
    virtualizationType: "hvm",
    clientToken: "",
    tagSet: tagSet(model, i.instanceId),
    hypervisor: "xen",
    networkInterfaceSet: live
      ? [{
          networkInterfaceId: `eni-${i.instanceId.slice(2)}`,
          subnetId: "subnet-double",
          vpcId: model.vpc.vpcId,
          description: "",
          ownerId: model.ownerId,
          status: "in-use",
          macAddress: "02:00:00:00:00:01",
          privateIpAddress: i.privateIp,
          privateDnsName: privateDns,
          sourceDestCheck: true,
          groupSet: groups,
          attachment: { attachmentId: `eni-attach-${i.instanceId.slice(2)}`, deviceIndex: 0, networkCardIndex: 0, status: "attached", attachTime: i.launchTime, deleteOnTermination: true },
          association: { publicIp: i.publicIp, publicDnsName: publicDns, ipOwnerId: "amazon" },
          privateIpAddressesSet: [{ privateIpAddress: i.privateIp, privateDnsName: privateDns, primary: true, association: { publicIp: i.publicIp, publicDnsName: publicDns, ipOwnerId: "amazon" } }],
          ipv6AddressesSet: [],
          interfaceType: "interface",
        }]
      : [],
    ebsOptimized: false,
    enaSupport: true,
    cpuOptions: { coreCount: 1, threadsPerCore: 2 },
    capacityReservationSpecification: { capacityReservationPreference: "open" },
    hibernationOptions: { configured: false },
    metadataOptions: { state: "applied", httpTokens: i.httpTokens, httpPutResponseHopLimit: 1, httpEndpoint: "enabled", httpProtocolIpv6: "disabled", instanceMetadataTags: "disabled" },
    enclaveOptions: { enabled: false },
    bootMode: "uefi",
    platformDetails: "Linux/UNIX",
    usageOperation: "RunInstances",
    privateDnsNameOptions: { hostnameType: "ip-name", enableResourceNameDnsARecord: false, enableResourceNameDnsAAAARecord: false },
    maintenanceOptions: { autoRecovery: "default" },
    currentInstanceBootMode: "uefi",
  };
}

const imageFilters: Record<string, (image: Image) => string> = {
  name: (i) => i.name,
  architecture: (i) => i.architecture,
  state: (i) => i.state ?? "available",
  "owner-id": (i) => i.ownerId,
  "image-id": (i) => i.imageId,
};

const handlers: Record<string, Handler> = {
  DescribeImages(params, model) {
    const owners = list(params, "Owner").map((o) => (o === "self" ? model.ownerId : o));
    const ids = list(params, "ImageId");
    let images = model.images.filter((i) => (owners.length === 0 || owners.includes(i.ownerId)) && (ids.length === 0 || ids.includes(i.imageId)));
    if (ids.length > 0 && images.length === 0) throw new Ec2Error("InvalidAMIID.NotFound", `The image id '[${ids.join(", ")}]' does not exist`);
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
        isPublic: i.ownerId !== model.ownerId,
        architecture: i.architecture,
        imageType: "machine",
        name: i.name,
        description: i.description,
        rootDeviceType: "ebs",
        rootDeviceName: "/dev/xvda",
        virtualizationType: "hvm",
        hypervisor: "xen",
        enaSupport: true,
        sriovNetSupport: "simple",
        bootMode: i.bootMode ?? "uefi-preferred",
        imdsSupport: i.imdsSupport,
        blockDeviceMapping: [{
          deviceName: "/dev/xvda",
          ebs: {
            snapshotId: i.rootSnapshotId, volumeSize: i.rootVolume?.size ?? 20, volumeType: i.rootVolume?.type ?? "gp3",
            deleteOnTermination: i.rootVolume?.deleteOnTermination ?? true, encrypted: false,
          },
        }],
        tagSet: tagSet(model, i.imageId),
      })),
    };
  },
  async ImportSnapshot(params, model) {
    const format = params.get("DiskContainer.Format") ?? "";
    const bucket = params.get("DiskContainer.UserBucket.S3Bucket");
    const key = params.get("DiskContainer.UserBucket.S3Key");
    if (!["VHD", "VMDK", "RAW"].includes(format.toUpperCase())) throw new Ec2Error("InvalidParameter", `Unsupported disk format '${format}'`);
    if (bucket === undefined || key === undefined) throw new Ec2Error("InvalidParameter", "DiskContainer.UserBucket is required (the double imports from S3 only)");
    if (model.s3Endpoint === undefined || model.snapshotDir === undefined) throw new Ec2Error("InvalidParameter", "this EC2 double was started without an S3 server to import from");
    // VM Import reads the object with the role's rights; the test S3 server serves it without them
    const object = await fetch(`${model.s3Endpoint}/${bucket}/${encodeURI(key)}`);
    if (!object.ok) throw new Ec2Error("InvalidParameter", `ClientError: Unable to read s3://${bucket}/${key} (${object.status})`);
    const importTaskId = id("import-snap");
    const snapshotId = id("snap");
    const uploaded = join(model.snapshotDir, `${snapshotId}.${format.toLowerCase()}`);
    await pipeline(Readable.fromWeb(object.body as import("node:stream/web").ReadableStream), createWriteStream(uploaded));
    const objectBytes = (await stat(uploaded)).size;
    const file = join(model.snapshotDir, `${snapshotId}.raw`);
    if (format.toUpperCase() === "RAW") await rename(uploaded, file);
    else {
      await execFileAsync("qemu-img", ["convert", "-f", format.toUpperCase() === "VHD" ? "vpc" : "vmdk", "-O", "raw", uploaded, file]);
      await rm(uploaded);
    }
    const volumeSize = Math.max(1, Math.ceil((await stat(file)).size / 2 ** 30));
    model.snapshots.push({
      snapshotId, importTaskId, description: params.get("Description") ?? "", file, volumeSize, objectBytes, userBucket: { bucket, key }, format: format.toUpperCase(),
      startTime: new Date().toISOString().replace(/\.\d+Z$/, ".000Z"),
    });
    model.tags[snapshotId] = tagSpecifications(params, "snapshot");
    model.tags[importTaskId] = tagSpecifications(params, "import-snapshot-task");
    return { importTaskId, description: params.get("Description"), snapshotTaskDetail: importTaskDetail(model.snapshots.at(-1)!) };
  },
  DescribeImportSnapshotTasks(params, model) {
    const ids = list(params, "ImportTaskId");
    const tasks = model.snapshots.filter((x) => ids.length === 0 || ids.includes(x.importTaskId));
    return { importSnapshotTaskSet: tasks.map((x) => ({ importTaskId: x.importTaskId, description: x.description, snapshotTaskDetail: importTaskDetail(x), tagSet: tagSet(model, x.importTaskId) })) };
  },
  DescribeSnapshots(params, model) {
    const ids = list(params, "SnapshotId");
    const snapshots = model.snapshots.filter((x) => ids.length === 0 || ids.includes(x.snapshotId));
    if (ids.length > 0 && snapshots.length < ids.length) {
      throw new Ec2Error("InvalidSnapshot.NotFound", `The snapshot '${ids.find((i) => !snapshots.some((x) => x.snapshotId === i))}' does not exist.`);
    }
    return {
      snapshotSet: snapshots.map((x) => ({
        snapshotId: x.snapshotId, volumeId: "vol-ffffffff", status: "completed", startTime: x.startTime, progress: "100%", ownerId: model.ownerId,
        volumeSize: x.volumeSize, description: x.description, encrypted: false, storageTier: "standard", tagSet: tagSet(model, x.snapshotId),
      })),
    };
  },
  DeleteSnapshot(params, model) {
    const snapshotId = params.get("SnapshotId");
    const snapshot = model.snapshots.find((x) => x.snapshotId === snapshotId);
    if (snapshot === undefined) throw new Ec2Error("InvalidSnapshot.NotFound", `The snapshot '${snapshotId}' does not exist.`);
    const user = model.images.find((i) => i.rootSnapshotId === snapshotId);
    if (user !== undefined) throw new Ec2Error("InvalidSnapshot.InUse", `The snapshot ${snapshotId} is currently in use by ${user.imageId}`);
    model.snapshots = model.snapshots.filter((x) => x !== snapshot);
    delete model.tags[snapshot.snapshotId];
    return rm(snapshot.file, { force: true }).then(() => ({ return: true }));
  },
  RegisterImage(params, model) {
    const name = params.get("Name") ?? "";
    if (model.images.some((i) => i.name === name && i.ownerId === model.ownerId)) {
      throw new Ec2Error("InvalidAMIName.Duplicate", `AMI name ${name} is already in use by AMI ${model.images.find((i) => i.name === name)!.imageId}`);
    }
    const rootDevice = params.get("RootDeviceName") ?? "/dev/xvda";
    let rootSnapshotId: string | undefined;
    let rootVolume: Image["rootVolume"];
    for (let n = 1; params.has(`BlockDeviceMapping.${n}.DeviceName`); n++) {
      if (params.get(`BlockDeviceMapping.${n}.DeviceName`) !== rootDevice) continue;
      rootSnapshotId = params.get(`BlockDeviceMapping.${n}.Ebs.SnapshotId`);
      const snapshot = model.snapshots.find((x) => x.snapshotId === rootSnapshotId);
      if (snapshot === undefined) throw new Ec2Error("InvalidSnapshot.NotFound", `The snapshot '${rootSnapshotId}' does not exist.`);
      rootVolume = {
        size: Number(params.get(`BlockDeviceMapping.${n}.Ebs.VolumeSize`) ?? snapshot.volumeSize) || snapshot.volumeSize,
        type: params.get(`BlockDeviceMapping.${n}.Ebs.VolumeType`) ?? "gp3",
        deleteOnTermination: params.get(`BlockDeviceMapping.${n}.Ebs.DeleteOnTermination`) !== "false",
      };
    }
    if (rootSnapshotId === undefined) throw new Ec2Error("InvalidBlockDeviceMapping", `no snapshot for the root device ${rootDevice}`);
    const image: Image = {
      imageId: id("ami"), name, ownerId: model.ownerId, architecture: params.get("Architecture") === "arm64" ? "arm64" : "x86_64",
      creationDate: new Date().toISOString().replace(/\.\d+Z$/, ".000Z"), state: "available", rootSnapshotId, rootVolume,
      description: params.get("Description"), bootMode: params.get("BootMode"), imdsSupport: params.get("ImdsSupport"),
    };
    model.images.push(image);
    model.tags[image.imageId] = tagSpecifications(params, "image");
    return { imageId: image.imageId };
  },
  DeregisterImage(params, model) {
    const imageId = params.get("ImageId");
    const image = model.images.find((i) => i.imageId === imageId && i.ownerId === model.ownerId);
    if (image === undefined) throw new Ec2Error("InvalidAMIID.NotFound", `The image id '[${imageId}]' does not exist`);
    model.images = model.images.filter((i) => i !== image);
    delete model.tags[image.imageId];
    return { return: true };
  },
  GetInstanceUefiData(params) {
    return { instanceId: params.get("InstanceId"), uefiData: "" };
  },
  DescribeVpcs(params, model) {
    const ids = list(params, "VpcId");
    const defaultOnly = filters(params).get("isDefault")?.includes("true");
    const matches = (ids.length === 0 || ids.includes(model.vpc.vpcId)) && (defaultOnly === undefined || defaultOnly);
    return {
      vpcSet: matches
        ? [{ vpcId: model.vpc.vpcId, state: "available", cidrBlock: model.vpc.cidrBlock, dhcpOptionsId: "dopt-double", instanceTenancy: "default", isDefault: true, ownerId: model.ownerId, cidrBlockAssociationSet: [{ associationId: "vpc-cidr-assoc-double", cidrBlock: model.vpc.cidrBlock, cidrBlockState: { state: "associated" } }] }]
        : [],
    };
  },
  DescribeAvailabilityZones(_params, model) {
    return { availabilityZoneInfo: [{ zoneName: `${model.region}a`, zoneState: "available", regionName: model.region, zoneId: "double-az1" }] };
  },
  CreateSecurityGroup(params, model) {
    const group: SecurityGroup = {
      groupId: id("sg"),
      groupName: params.get("GroupName") ?? id("group"),
      description: params.get("GroupDescription") ?? "",
      vpcId: params.get("VpcId") ?? model.vpc.vpcId,
      ingress: [],
      // AWS adds allow-all egress to every new group; the provider revokes it before adding its own rules.
      egress: [{ protocol: "-1", fromPort: 0, toPort: 0, cidrs: ["0.0.0.0/0"], ipv6Cidrs: [] }],
    };
    model.securityGroups.push(group);
    model.tags[group.groupId] = tagSpecifications(params, "security-group");
    return { return: true, groupId: group.groupId };
  },
  DescribeSecurityGroups(params, model) {
    const ids = list(params, "GroupId");
    let groups = model.securityGroups.filter((g) => ids.length === 0 || ids.includes(g.groupId));
    if (ids.length > 0 && groups.length < ids.length) {
      throw new Ec2Error("InvalidGroup.NotFound", `The security group '${ids.find((i) => !groups.some((g) => g.groupId === i))}' does not exist`);
    }
    for (const [name, values] of filters(params)) {
      const field = ({ "group-name": (g: SecurityGroup) => g.groupName, "vpc-id": (g: SecurityGroup) => g.vpcId, "group-id": (g: SecurityGroup) => g.groupId } as Record<string, (g: SecurityGroup) => string>)[name];
      if (field) groups = groups.filter((g) => values.some((v) => globMatch(v, field(g))));
    }
    return {
      securityGroupInfo: groups.map((g) => ({
        ownerId: model.ownerId,
        groupId: g.groupId,
        groupName: g.groupName,
        groupDescription: g.description,
        vpcId: g.vpcId,
        ipPermissions: g.ingress.map(permissionXml),
        ipPermissionsEgress: g.egress.map(permissionXml),
        tagSet: tagSet(model, g.groupId),
      })),
    };
  },
  AuthorizeSecurityGroupIngress(params, model) {
    findGroup(model, params.get("GroupId")).ingress.push(...permissions(params));
    return { return: true };
  },
  AuthorizeSecurityGroupEgress(params, model) {
    findGroup(model, params.get("GroupId")).egress.push(...permissions(params));
    return { return: true };
  },
  RevokeSecurityGroupIngress(params, model) {
    const group = findGroup(model, params.get("GroupId"));
    group.ingress = group.ingress.filter((p) => !permissions(params).some((r) => samePermission(p, r)));
    return { return: true };
  },
  RevokeSecurityGroupEgress(params, model) {
    const group = findGroup(model, params.get("GroupId"));
    group.egress = group.egress.filter((p) => !permissions(params).some((r) => samePermission(p, r)));
    return { return: true };
  },
  DeleteSecurityGroup(params, model) {
    const group = findGroup(model, params.get("GroupId"));
    if (model.instances.some((i) => i.state !== "terminated" && i.groupIds.includes(group.groupId))) {
      throw new Ec2Error("DependencyViolation", `resource ${group.groupId} has a dependent object`);
    }
    model.securityGroups = model.securityGroups.filter((g) => g !== group);
    return { return: true };
  },
  DescribeNetworkInterfaces() {
    return { networkInterfaceSet: [] };
  },
  ImportKeyPair(params, model) {
    const keyName = params.get("KeyName")!;
    if (model.keyPairs.some((k) => k.keyName === keyName)) throw new Ec2Error("InvalidKeyPair.Duplicate", `The keypair '${keyName}' already exists.`);
    const publicKey = Buffer.from(params.get("PublicKeyMaterial") ?? "", "base64").toString("utf8").trim();
    const key: KeyPair = { keyPairId: id("key"), keyName, publicKey, fingerprint: createHash("sha256").update(publicKey).digest("base64") };
    model.keyPairs.push(key);
    model.tags[key.keyPairId] = tagSpecifications(params, "key-pair");
    return { keyFingerprint: key.fingerprint, keyName, keyPairId: key.keyPairId, tagSet: tagSet(model, key.keyPairId) };
  },
  DescribeKeyPairs(params, model) {
    const names = list(params, "KeyName");
    const ids = list(params, "KeyPairId");
    const keys = model.keyPairs.filter((k) => (names.length === 0 || names.includes(k.keyName)) && (ids.length === 0 || ids.includes(k.keyPairId)));
    if ((names.length > 0 || ids.length > 0) && keys.length === 0) {
      throw new Ec2Error("InvalidKeyPair.NotFound", `The key pair '${names[0] ?? ids[0]}' does not exist`);
    }
    return {
      keySet: keys.map((k) => ({
        keyPairId: k.keyPairId, keyFingerprint: k.fingerprint, keyName: k.keyName, keyType: k.publicKey.startsWith("ssh-ed25519") ? "ed25519" : "rsa",
        publicKey: k.publicKey, createTime: "2026-01-01T00:00:00.000Z", tagSet: tagSet(model, k.keyPairId),
      })),
    };
  },
  DeleteKeyPair(params, model) {
    model.keyPairs = model.keyPairs.filter((k) => k.keyName !== params.get("KeyName") && k.keyPairId !== params.get("KeyPairId"));
    return { return: true };
  },
  async RunInstances(params, model) {
    const image = model.images.find((i) => i.imageId === params.get("ImageId"));
    if (!image) throw new Ec2Error("InvalidAMIID.NotFound", `The image id '[${params.get("ImageId")}]' does not exist`);
    const keyName = params.get("KeyName");
    const key = model.keyPairs.find((k) => k.keyName === keyName);
    if (keyName !== undefined && !key) throw new Ec2Error("InvalidKeyPair.NotFound", `The key pair '${keyName}' does not exist`);
    const groupIds = list(params, "SecurityGroupId");
    groupIds.forEach((g) => findGroup(model, g));
    const rootSnapshot = image.rootSnapshotId === undefined ? undefined : model.snapshots.find((x) => x.snapshotId === image.rootSnapshotId);
    if (image.rootSnapshotId !== undefined && rootSnapshot === undefined) {
      throw new Ec2Error("InvalidSnapshot.NotFound", `The snapshot '${image.rootSnapshotId}' of image '${image.imageId}' does not exist`);
    }
    const machine = model.launch ? await model.launch(key?.publicKey, rootSnapshot === undefined ? undefined : { rootDisk: rootSnapshot.file }) : undefined;
    const instance: Instance = {
      instanceId: id("i"),
      imageId: image.imageId,
      instanceType: params.get("InstanceType") ?? "m1.small",
      keyName,
      groupIds,
      state: "running",
      architecture: image.architecture,
      privateIp: machine?.privateIp ?? `10.233.${model.instances.length + 100}.10`,
      publicIp: machine?.publicIp ?? `10.233.${model.instances.length + 100}.10`,
      volumeId: id("vol"),
      volume: {
        size: Number(params.get("BlockDeviceMapping.1.Ebs.VolumeSize") ?? 8),
        type: params.get("BlockDeviceMapping.1.Ebs.VolumeType") ?? "gp3",
        encrypted: params.get("BlockDeviceMapping.1.Ebs.Encrypted") === "true",
        deleteOnTermination: params.get("BlockDeviceMapping.1.Ebs.DeleteOnTermination") !== "false",
      },
      httpTokens: params.get("MetadataOptions.HttpTokens") ?? "optional",
      userData: params.get("UserData"),
      launchTime: new Date().toISOString().replace(/\.\d+Z$/, ".000Z"),
      machine,
    };
    model.instances.push(instance);
    model.tags[instance.instanceId] = tagSpecifications(params, "instance");
    model.tags[instance.volumeId] = tagSpecifications(params, "volume");
    return { reservationId: id("r"), ownerId: model.ownerId, groupSet: [], instancesSet: [instanceXml(model, instance)] };
  },
  DescribeInstances(params, model) {
    const ids = list(params, "InstanceId");
    let instances = model.instances.filter((i) => ids.length === 0 || ids.includes(i.instanceId));
    if (ids.length > 0 && instances.length === 0) throw new Ec2Error("InvalidInstanceID.NotFound", `The instance IDs '${ids.join(", ")}' do not exist`);
    for (const [name, values] of filters(params)) {
      if (name === "instance-state-name") instances = instances.filter((i) => values.includes(i.state));
    }
    return { reservationSet: instances.map((i) => ({ reservationId: `r-${i.instanceId.slice(2)}`, ownerId: model.ownerId, groupSet: [], instancesSet: [instanceXml(model, i)] })) };
  },
  DescribeInstanceTypes(params) {
    return {
      instanceTypeSet: list(params, "InstanceType").map((type) => ({
        instanceType: type,
        currentGeneration: true,
        freeTierEligible: type === "t3.micro",
        supportedUsageClasses: ["on-demand", "spot"],
        supportedRootDeviceTypes: ["ebs"],
        supportedVirtualizationTypes: ["hvm"],
        bareMetal: false,
        hypervisor: "nitro",
        processorInfo: { supportedArchitectures: [/^[a-z]+\d+g/.test(type) ? "arm64" : "x86_64"] },
        vCpuInfo: { defaultVCpus: 2, defaultCores: 1, defaultThreadsPerCore: 2, validCores: [1], validThreadsPerCore: [1, 2] },
        memoryInfo: { sizeInMiB: 1024 },
        instanceStorageSupported: false,
        ebsInfo: { ebsOptimizedSupport: "default", encryptionSupport: "supported", nvmeSupport: "required" },
        networkInfo: { networkPerformance: "Up to 5 Gigabit", maximumNetworkInterfaces: 2, ipv4AddressesPerInterface: 2, ipv6Supported: true, enaSupport: "required" },
        burstablePerformanceSupported: type.startsWith("t"),
        supportedBootModes: ["legacy-bios", "uefi"],
      })),
    };
  },
  DescribeInstanceAttribute(params, model) {
    const instance = findInstance(model, params.get("InstanceId"));
    const attribute = params.get("Attribute");
    const values: Record<string, XmlValue> = {
      disableApiTermination: { value: false },
      disableApiStop: { value: false },
      instanceInitiatedShutdownBehavior: { value: "stop" },
      userData: instance.userData ? { value: instance.userData } : {},
      sourceDestCheck: { value: true },
      ebsOptimized: { value: false },
    };
    if (attribute === undefined || !(attribute in values)) throw new Ec2Error("InvalidParameterValue", `Value (${attribute}) for parameter attribute is invalid.`);
    return { instanceId: instance.instanceId, [attribute]: values[attribute] };
  },
  ModifyInstanceAttribute(params, model) {
    findInstance(model, params.get("InstanceId"));
    return { return: true };
  },
  DescribeInstanceCreditSpecifications(params, model) {
    return { instanceCreditSpecificationSet: list(params, "InstanceId").map((i) => ({ instanceId: findInstance(model, i).instanceId, cpuCredits: "unlimited" })) };
  },
  DescribeVolumes(params, model) {
    const ids = list(params, "VolumeId");
    const attachedTo = filters(params).get("attachment.instance-id");
    const instances = model.instances.filter((i) => i.state !== "terminated" && (ids.length === 0 || ids.includes(i.volumeId)) && (!attachedTo || attachedTo.includes(i.instanceId)));
    return {
      volumeSet: instances.map((i) => ({
        volumeId: i.volumeId, size: i.volume.size, snapshotId: "", availabilityZone: `${model.region}a`, status: "in-use", createTime: i.launchTime,
        attachmentSet: [{ volumeId: i.volumeId, instanceId: i.instanceId, device: "/dev/xvda", status: "attached", attachTime: i.launchTime, deleteOnTermination: i.volume.deleteOnTermination }],
        volumeType: i.volume.type, iops: 3000, throughput: 125, encrypted: i.volume.encrypted, multiAttachEnabled: false, tagSet: tagSet(model, i.volumeId),
      })),
    };
  },
  DescribeTags(params, model) {
    const byFilter = filters(params);
    const resources = byFilter.get("resource-id");
    const keys = byFilter.get("key");
    const out: XmlValue[] = [];
    for (const [resourceId, tags] of Object.entries(model.tags)) {
      if (resources && !resources.includes(resourceId)) continue;
      for (const tag of tags) {
        if (keys && !keys.some((k) => globMatch(k, tag.key))) continue;
        out.push({ resourceId, resourceType: resourceId.startsWith("i-") ? "instance" : resourceId.split("-")[0], key: tag.key, value: tag.value });
      }
    }
    return { tagSet: out };
  },
  CreateTags(params, model) {
    const tags: Tag[] = [];
    for (let i = 1; params.has(`Tag.${i}.Key`); i++) tags.push({ key: params.get(`Tag.${i}.Key`)!, value: params.get(`Tag.${i}.Value`) ?? "" });
    for (const resourceId of list(params, "ResourceId")) {
      model.tags[resourceId] = [...(model.tags[resourceId] ?? []).filter((t) => !tags.some((n) => n.key === t.key)), ...tags];
    }
    return { return: true };
  },
  DeleteTags(params, model) {
    const keys: string[] = [];
    for (let i = 1; params.has(`Tag.${i}.Key`); i++) keys.push(params.get(`Tag.${i}.Key`)!);
    for (const resourceId of list(params, "ResourceId")) model.tags[resourceId] = (model.tags[resourceId] ?? []).filter((t) => !keys.includes(t.key));
    return { return: true };
  },
  async TerminateInstances(params, model) {
    const changes: XmlValue[] = [];
    for (const instanceId of list(params, "InstanceId")) {
      const instance = findInstance(model, instanceId);
      const previous = instance.state;
      await instance.machine?.stop();
      instance.machine = undefined;
      instance.state = "terminated";
      changes.push({ instanceId, currentState: { code: STATE_CODES["shutting-down"], name: "shutting-down" }, previousState: { code: STATE_CODES[previous], name: previous } });
    }
    return { instancesSet: changes };
  },
  GetConsoleOutput(params, model) {
    const instanceId = params.get("InstanceId") ?? "";
    const instance = model.instances.find((i) => i.instanceId === instanceId);
    const output = instance?.machine?.consoleOutput ?? model.consoleOutputs[instanceId];
    if (output === undefined && instance === undefined) throw new Ec2Error("InvalidInstanceID.NotFound", `The instance ID '${instanceId}' does not exist`);
    return { instanceId, timestamp: new Date().toISOString(), output: Buffer.from(output ?? "").toString("base64") };
  },
};

export interface Ec2Double {
  readonly endpoint: string;
  readonly model: Ec2Model;
  close(): Promise<void>;
}

/** Starts the double on 127.0.0.1 at a free port. */
export async function startEc2Double(model: Partial<Ec2Model> = {}): Promise<Ec2Double> {
  const state: Ec2Model = {
    region: "eu-central-1",
    ownerId: "123456789012",
    images: [],
    vpc: { vpcId: "vpc-double", cidrBlock: "10.233.0.0/16" },
    securityGroups: [],
    keyPairs: [],
    instances: [],
    tags: {},
    consoleOutputs: {},
    calls: [],
    snapshots: [],
    ...model,
  };
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      const requestId = randomUUID();
      const params = parseParams(body, req.url ?? "/");
      const action = params.get("Action") ?? "";
      state.calls.push(action);
      res.setHeader("Content-Type", "text/xml;charset=UTF-8");
      const handler = handlers[action];
      try {
        if (handler === undefined) throw new Ec2Error("InvalidAction", `The EC2 test double does not implement ${action}`);
        res.end(response(action, await handler(params, state), requestId));
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
    close: async () => {
      for (const instance of state.instances) await instance.machine?.stop();
      for (const snapshot of state.snapshots) await rm(snapshot.file, { force: true });
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
