import type { WorkflowNode } from './graph.js';

/** A model file a loader widget names, and the ComfyUI folder the loader lists it from. */
export interface LoaderFile {
  folder: string;
  /** As the widget holds it: a name, or a path inside the folder ("SDXL/x.safetensors"). */
  file: string;
  widget: string;
}

interface LoaderWidget {
  widget: string;
  /** Its position in UI-format `widgets_values`. */
  index: number;
  folder: string;
}

const one = (widget: string, folder: string, index = 0): LoaderWidget[] => [{ widget, index, folder }];
const clips = (count: number): LoaderWidget[] =>
  Array.from({ length: count }, (_, i) => ({ widget: `clip_name${i + 1}`, index: i, folder: 'text_encoders' }));

/**
 * ComfyUI's loaders (and the GGUF ones most FLUX/Wan workflows use): which widgets name files,
 * in which folder. Positions follow each node's widget order as the frontend saves it.
 */
const LOADERS: Readonly<Record<string, readonly LoaderWidget[]>> = {
  CheckpointLoaderSimple: one('ckpt_name', 'checkpoints'),
  CheckpointLoader: [
    { widget: 'config_name', index: 0, folder: 'configs' },
    { widget: 'ckpt_name', index: 1, folder: 'checkpoints' },
  ],
  ImageOnlyCheckpointLoader: one('ckpt_name', 'checkpoints'),
  unCLIPCheckpointLoader: one('ckpt_name', 'checkpoints'),
  LoraLoader: one('lora_name', 'loras'),
  LoraLoaderModelOnly: one('lora_name', 'loras'),
  VAELoader: one('vae_name', 'vae'),
  UNETLoader: one('unet_name', 'diffusion_models'),
  CLIPLoader: one('clip_name', 'text_encoders'),
  DualCLIPLoader: clips(2),
  TripleCLIPLoader: clips(3),
  QuadrupleCLIPLoader: clips(4),
  CLIPVisionLoader: one('clip_name', 'clip_vision'),
  ControlNetLoader: one('control_net_name', 'controlnet'),
  DiffControlNetLoader: one('control_net_name', 'controlnet'),
  UpscaleModelLoader: one('model_name', 'upscale_models'),
  LatentUpscaleModelLoader: one('model_name', 'latent_upscale_models'),
  StyleModelLoader: one('style_model_name', 'style_models'),
  GLIGENLoader: one('gligen_name', 'gligen'),
  HypernetworkLoader: one('hypernetwork_name', 'hypernetworks'),
  PhotoMakerLoader: one('photomaker_model_name', 'photomaker'),
  ModelPatchLoader: one('name', 'model_patches'),
  AudioEncoderLoader: one('audio_encoder_name', 'audio_encoders'),
  UnetLoaderGGUF: one('unet_name', 'diffusion_models'),
  CLIPLoaderGGUF: one('clip_name', 'text_encoders'),
  DualCLIPLoaderGGUF: clips(2),
  TripleCLIPLoaderGGUF: clips(3),
};

/**
 * Input names that mean the same folder on any node, for loaders of custom packs whose values
 * are saved by name (API format, or UI nodes that save widgets as an object).
 */
const BY_NAME: Readonly<Record<string, string>> = {
  ckpt_name: 'checkpoints',
  lora_name: 'loras',
  vae_name: 'vae',
  unet_name: 'diffusion_models',
  control_net_name: 'controlnet',
  style_model_name: 'style_models',
  gligen_name: 'gligen',
  hypernetwork_name: 'hypernetworks',
  clip_vision_name: 'clip_vision',
  upscale_model_name: 'upscale_models',
};

/** Extensions ComfyUI lists in model folders (and .gguf, through the GGUF nodes). */
const MODEL_FILE = /\.(safetensors|sft|ckpt|pt|pt2|pth|bin|pkl|gguf)$/i;
const CONFIG_FILE = /\.ya?ml$/i;

/** The model files a node's loader widgets name (none for nodes that load nothing). */
export function loaderFiles(node: WorkflowNode): LoaderFile[] {
  const known = LOADERS[node.type];
  const out: LoaderFile[] = [];
  const add = (widget: string, folder: string, value: unknown): void => {
    if (typeof value !== 'string') return;
    const file = value.trim().replace(/\\/g, '/');
    if ((folder === 'configs' ? CONFIG_FILE : MODEL_FILE).test(file)) out.push({ folder, file, widget });
  };
  if (known) {
    for (const w of known) add(w.widget, w.folder, w.widget in node.widgetsByName ? node.widgetsByName[w.widget] : node.widgetList[w.index]);
    return out;
  }
  for (const [widget, value] of Object.entries(node.widgetsByName)) {
    const folder = BY_NAME[widget];
    if (folder) add(widget, folder, value);
  }
  return out;
}

/** ComfyUI reads these legacy folders as the same place. */
const SAME_FOLDER: Readonly<Record<string, string>> = { clip: 'text_encoders', unet: 'diffusion_models', unet_gguf: 'diffusion_models' };

export function canonicalFolder(folder: string): string {
  const f = folder.trim().toLowerCase();
  return SAME_FOLDER[f] ?? f;
}

/** The folders a file of `folder` may sit in on disk (the legacy names included). */
export function folderAliases(folder: string): string[] {
  const canonical = canonicalFolder(folder);
  return [canonical, ...Object.entries(SAME_FOLDER).filter(([, to]) => to === canonical).map(([from]) => from)];
}

/** The last path segment of a loader value ("SDXL/x.safetensors" → "x.safetensors"). */
export function baseName(file: string): string {
  return file.replace(/\\/g, '/').split('/').pop() ?? file;
}
