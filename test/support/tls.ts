import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A PEM certificate and its key. */
export interface CertAndKey {
  cert: Buffer;
  key: Buffer;
}

/**
 * Make a throwaway self-signed certificate for localhost and 127.0.0.1 with
 * the openssl CLI (test/system-deps.sh installs it when missing), so no key
 * material lives in the repository.
 */
export function selfSignedCert(): CertAndKey {
  const dir = mkdtempSync(join(tmpdir(), "greeter-tls-"));
  try {
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
        "-keyout",
        key,
        "-out",
        cert,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    return { cert: readFileSync(cert), key: readFileSync(key) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A certificate authority made for a test: its certificate, and its key to issue with. */
export interface TestCa extends CertAndKey {
  readonly name: string;
}

/** Make a throwaway certificate authority with openssl. */
export function certificateAuthority(name: string): TestCa {
  return withDir((dir) => {
    openssl(dir, [
      "req",
      "-x509",
      ...ecKey,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-keyout",
      "key.pem",
      "-out",
      "cert.pem",
    ]);
    return { name, ...read(dir) };
  });
}

/** What a certificate issued by a test CA names, and how long it is valid. */
export interface CertRequest {
  /** The subject's common name. */
  readonly cn: string;
  /** Subject alternative names, as openssl writes them: DNS:localhost, IP:127.0.0.1, URI:spiffe://... */
  readonly san?: readonly string[];
  /** Days of validity from now; negative: expired that long ago. @default 1 */
  readonly days?: number;
}

/** A certificate for `request`, signed by `ca`, with a new key. */
export function issue(ca: TestCa, request: CertRequest): CertAndKey {
  return withDir((dir) => {
    writeFileSync(join(dir, "ca.pem"), ca.cert);
    writeFileSync(join(dir, "ca-key.pem"), ca.key);
    const san = request.san ?? [];
    writeFileSync(
      join(dir, "ext.cnf"),
      san.length === 0 ? "" : `subjectAltName=${san.join(",")}\n`,
    );
    openssl(dir, [
      "req",
      "-new",
      ...ecKey,
      "-subj",
      `/CN=${request.cn}`,
      "-keyout",
      "key.pem",
      "-out",
      "req.csr",
    ]);
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      "req.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca-key.pem",
      "-set_serial",
      String(Date.now()),
      "-days",
      String(request.days ?? 1),
      "-extfile",
      "ext.cnf",
      "-out",
      "cert.pem",
    ]);
    return read(dir);
  });
}

const ecKey = [
  "-newkey",
  "ec",
  "-pkeyopt",
  "ec_paramgen_curve:prime256v1",
  "-nodes",
];

function withDir<T>(use: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "greeter-pki-"));
  try {
    return use(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, {
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
  });
}

function read(dir: string): CertAndKey {
  return {
    cert: readFileSync(join(dir, "cert.pem")),
    key: readFileSync(join(dir, "key.pem")),
  };
}
