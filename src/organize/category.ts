import path from 'node:path';
import { normalizeFolder, type ModelFolder } from '../config/folders.js';
import { UserError } from '../lib/errors.js';
import { NotSafetensorsError, readSafetensorsHeader } from './safetensors.js';

export interface CategoryInput {
  /** The folder the manifest or the API request names. */
  specCategory?: string;
  /** The folder the source's own metadata implies (sources map their types, e.g. CivitAI's). */
  sourceCategory?: string;
  /** The downloaded file (usually a hidden temp file). */
  file: string;
  /** The name the file will be published under, for messages and its extension; defaults to the file's base name. */
  name?: string;
}

/** Formats that carry no readable list of tensor names. */
const OPAQUE_EXTENSIONS = new Set(['.ckpt', '.pt', '.pt2', '.pth', '.bin', '.pkl', '.gguf', '.onnx', '.zip']);

/**
 * The folder a downloaded model goes to: the manifest's (or API request's) category, else the
 * source's own type, else what the safetensors header shows. Throws a UserError when none tells.
 */
export async function chooseCategory(input: CategoryInput): Promise<string> {
  const name = input.name ?? path.basename(input.file);
  if (input.specCategory !== undefined) {
    const folder = normalizeFolder(input.specCategory);
    if (!folder) throw new UserError(`category "${input.specCategory}" of ${name} is not a ComfyUI model folder`);
    return folder;
  }
  const fromSource = input.sourceCategory !== undefined ? normalizeFolder(input.sourceCategory) : undefined;
  if (fromSource) return fromSource;

  const unknown = (why: string) =>
    new UserError(`cannot tell the folder of ${name} (${why}); set a category (e.g. category = "loras")`);
  const extension = path.extname(name).toLowerCase();
  if (OPAQUE_EXTENSIONS.has(extension)) throw unknown(`a ${extension} file has no safetensors header to read`);
  try {
    const { tensors } = await readSafetensorsHeader(input.file);
    const folder = classifyTensors(tensors);
    if (folder) return folder;
    throw unknown('its tensor names match no known kind of model');
  } catch (err) {
    if (err instanceof NotSafetensorsError) throw unknown(`not a safetensors file: ${err.message}`);
    throw err;
  }
}

/**
 * The folder a model belongs in, from its tensor names, following the keys ComfyUI itself uses to
 * detect model kinds. Order matters: a LoRA's keys embed the names of the layers it patches
 * (`double_blocks.`, `text_model.encoder.`), and a full checkpoint embeds a VAE and text encoders.
 */
export function classifyTensors(names: readonly string[]): ModelFolder | undefined {
  if (names.length === 0) return undefined;
  const has = (test: (n: string) => boolean) => names.some(test);
  const starts = (...prefixes: string[]) => has((n) => prefixes.some((p) => n.startsWith(p)));
  const contains = (...parts: string[]) => has((n) => parts.some((p) => n.includes(p)));

  if (names.every((n) => n === 'clip_l' || n === 'clip_g')) return 'embeddings';
  if (starts('emb_params', 'string_to_param')) return 'embeddings';
  if (
    starts('lora_') ||
    contains('.lora_A.', '.lora_B.', '.lora_down.', '.lora_up.', '.hada_w1_a', '.lokr_w1')
  ) {
    return 'loras';
  }
  if (starts('model.diffusion_model.')) {
    // A bare diffusion model keeps ComfyUI's prefix; only a file that also carries a VAE or text
    // encoder loads with the checkpoint loader.
    return starts('first_stage_model.', 'cond_stage_model.', 'conditioner.embedders.', 'vae.', 'text_encoders.')
      ? 'checkpoints'
      : 'diffusion_models';
  }
  if (starts('control_model.', 'input_hint_block.', 'controlnet_cond_embedding.', 'controlnet_blocks.')) return 'controlnet';
  if (starts('double_blocks.', 'img_in.weight', 'joint_blocks.')) return 'diffusion_models';
  if (
    (starts('encoder.down.') && starts('decoder.up.', 'decoder.conv_in.weight')) ||
    (starts('encoder.down_blocks.') && starts('decoder.up_blocks.'))
  ) {
    return 'vae';
  }
  if (starts('vision_model.encoder.layers.')) return 'clip_vision';
  if (starts('text_model.encoder.', 'encoder.block.')) return 'text_encoders';
  if (
    (names.includes('model.0.weight') && starts('model.1.sub.0.RDB1')) ||
    (names.includes('conv_first.weight') && starts('body.0.rdb1', 'RRDB_trunk.0.RDB1'))
  ) {
    return 'upscale_models';
  }
  return undefined;
}
