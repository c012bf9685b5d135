import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

export interface PipCall {
  argv: string[];
  cwd: string;
  /** Requirements asked for, from -r files and the command line. */
  requirements: string[];
  /** Lines of every -c file. */
  constraints: string[];
  start: number;
  end: number;
  ok: boolean;
}

export interface FakePython {
  /** Executable to pass as ComfyUI's Python. */
  python: string;
  /** Every `-m pip install` so far, in the order they finished. */
  pipCalls(): Promise<PipCall[]>;
}

/**
 * A stand-in for ComfyUI's Python (there is no PyPI here). `-m pip list|freeze` prints the given
 * installed packages; `-m pip install` records what it was asked, sleeps a while (so overlapping
 * runs would show), and fails as pip's resolver does when a requirement conflicts with a
 * constraint. Anything else (install.py, -c) runs on the real python3.
 */
export async function writeFakePython(
  dir: string,
  options: { installed?: Record<string, string>; installMs?: number; realPython?: string } = {},
): Promise<FakePython> {
  await mkdir(dir, { recursive: true });
  const realPython = options.realPython ?? (await execa('python3', ['-c', 'import sys; print(sys.executable)'])).stdout.trim();
  const python = path.join(dir, 'fake-python');
  const log = path.join(dir, 'pip-calls.jsonl');
  const installed = options.installed ?? { torch: '2.5.1', torchvision: '0.20.1', numpy: '1.26.4', Pillow: '10.4.0', aiohttp: '3.10.5' };
  await writeFile(python, script(realPython, log, installed, options.installMs ?? 150));
  await chmod(python, 0o755);
  return {
    python,
    async pipCalls() {
      const text = await readFile(log, 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as PipCall);
    },
  };
}

function script(realPython: string, log: string, installed: Record<string, string>, installMs: number): string {
  return `#!${realPython}
import json, os, re, sys, time

LOG = ${JSON.stringify(log)}
INSTALLED = ${JSON.stringify(installed)}
INSTALL_SECONDS = ${installMs / 1000}

def version_tuple(v):
    return tuple(int(p) for p in re.findall(r"\\d+", v.split("+")[0]))

def satisfies(version, spec):
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.match(r"(==|>=|<=|!=|>|<|~=)\\s*(.+)", clause)
        if not m:
            continue
        op, want = m.group(1), version_tuple(m.group(2))
        have = version_tuple(version)
        ok = {"==": have == want, ">=": have >= want, "<=": have <= want, "!=": have != want,
              ">": have > want, "<": have < want, "~=": have >= want}[op]
        if not ok:
            return False
    return True

def split_req(line):
    m = re.match(r"\\s*([A-Za-z0-9_.\\-]+)\\s*(.*)", line)
    return (m.group(1).lower().replace("_", "-"), m.group(2).strip()) if m else (line, "")

def read_lines(path):
    with open(path) as f:
        return [l.split("#")[0].strip() for l in f if l.split("#")[0].strip() and not l.strip().startswith("-")]

argv = sys.argv[1:]
if argv[:3] in (["-m", "pip", "freeze"], ["-m", "pip", "list"]):
    for name, version in INSTALLED.items():
        print(f"{name}=={version}")
    sys.exit(0)

if argv[:3] == ["-m", "pip", "install"]:
    start = time.time()
    reqs, cons, i, rest = [], [], 0, argv[3:]
    while i < len(rest):
        a = rest[i]
        if a in ("-r", "-c"):
            (reqs if a == "-r" else cons).extend(read_lines(rest[i + 1]))
            i += 2
            continue
        if not a.startswith("-"):
            reqs.append(a)
        i += 1
    pins = {split_req(c)[0]: split_req(c)[1] for c in cons}
    ok = True
    for req in reqs:
        name, spec = split_req(req)
        if name in pins:
            pinned = pins[name].lstrip("=")
            if not satisfies(pinned, spec):
                print(f"ERROR: Cannot install {req} and {name}{pins[name]} because these package versions have conflicting dependencies.", file=sys.stderr)
                print("", file=sys.stderr)
                print("The conflict is caused by:", file=sys.stderr)
                print(f"    The user requested {req}", file=sys.stderr)
                print(f"    The user requested (constraint) {name}{pins[name]}", file=sys.stderr)
                print("ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/#dealing-with-dependency-conflicts", file=sys.stderr)
                ok = False
                break
    if ok:
        print("Collecting " + " ".join(reqs), flush=True)
        time.sleep(INSTALL_SECONDS)
        print("Successfully installed " + " ".join(split_req(r)[0] for r in reqs), flush=True)
    with open(LOG, "a") as f:
        f.write(json.dumps({"argv": argv, "cwd": os.getcwd(), "requirements": reqs, "constraints": cons,
                            "start": start, "end": time.time(), "ok": ok}) + "\\n")
    sys.exit(0 if ok else 1)

os.execv(${JSON.stringify(realPython)}, [${JSON.stringify(realPython)}] + argv)
`;
}
