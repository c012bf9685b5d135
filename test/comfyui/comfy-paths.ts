import { execa } from 'execa';

/**
 * Reads extra_model_paths files the way ComfyUI's utils/extra_config.py does (PyYAML, base_path,
 * one path per line, legacy folder names mapped) and returns folder → absolute paths. Needs PyYAML,
 * as ComfyUI does: scripts/setup.sh installs it (python3-yaml), and its absence fails the test.
 */
export async function comfyFolderPaths(...files: string[]): Promise<Record<string, string[]>> {
  const script = `
import json, os, sys, yaml
LEGACY = {"clip": "text_encoders", "unet": "diffusion_models"}
out = {}
for f in sys.argv[1:]:
    with open(f) as s:
        config = yaml.safe_load(s)
    for section in config.values():
        if section is None:
            continue
        base = section.pop("base_path", None)
        if base:
            base = os.path.expandvars(os.path.expanduser(base))
            if not os.path.isabs(base):
                base = os.path.abspath(os.path.join(os.path.dirname(f), base))
        section.pop("is_default", None)
        for folder, value in section.items():
            for line in value.split("\\n"):
                if not line:
                    continue
                full = os.path.normpath(os.path.join(base, line) if base else line)
                out.setdefault(LEGACY.get(folder, folder), []).append(full)
print(json.dumps(out))
`;
  const probe = await execa('python3', ['-c', 'import yaml'], { reject: false });
  if (probe.exitCode !== 0) throw new Error('python3 cannot import yaml (PyYAML): run scripts/setup.sh, which installs python3-yaml');
  const { stdout } = await execa('python3', ['-c', script, ...files]);
  return JSON.parse(stdout) as Record<string, string[]>;
}
