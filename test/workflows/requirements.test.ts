import { describe, expect, it } from 'vitest';
import { parseWorkflow, readWorkflow, WorkflowError } from '../../src/workflows/graph.js';
import { FileIndex, findMissing } from '../../src/workflows/missing.js';
import { workflowRequirements } from '../../src/workflows/requirements.js';
import { renderWorkflow, WORKFLOW_FILES } from '../fixtures/workflows.js';

const FLUX_SUBGRAPH = 'subgraph "Text to Image (FLUX.1 demo)"';

async function fixture(file: string): Promise<Record<string, unknown>> {
  return JSON.parse(await renderWorkflow(file, { HF: 'https://huggingface.co', CDN: 'https://cdn.example', CIVITAI: 'https://civitai.com', VAE_SHA256: 'a'.repeat(64), SMART_COMMIT: 'b'.repeat(40) })) as Record<string, unknown>;
}

describe('UI-format workflows', () => {
  it('reads models, loader files and node packs from subgraphs and the subgraph nested in one', async () => {
    const needs = workflowRequirements(readWorkflow(await fixture(WORKFLOW_FILES.fluxDetail)));
    expect(needs.format).toBe('ui');
    expect(needs.stamped).toBe(true);
    expect(needs.models.map((m) => [m.node, m.name, m.directory])).toEqual([
      [`UNETLoader #38 in ${FLUX_SUBGRAPH}`, 'flux1-demo_fp8.safetensors', 'diffusion_models'],
      [`DualCLIPLoader #40 in ${FLUX_SUBGRAPH}`, 'clip_l.safetensors', 'text_encoders'],
      [`DualCLIPLoader #40 in ${FLUX_SUBGRAPH}`, 't5xxl_fp8_e4m3fn.safetensors', 'text_encoders'],
      [`VAELoader #39 in ${FLUX_SUBGRAPH}`, 'flux_vae.safetensors', 'vae'],
      [`LoraLoaderModelOnly #41 in ${FLUX_SUBGRAPH}`, 'portrait_detail.safetensors', 'loras'],
    ]);
    expect(needs.models[3]).toMatchObject({ hash: 'a'.repeat(64), hashType: 'SHA256' });
    expect(needs.files.map((f) => `${f.folder}/${f.file}`)).toEqual([
      'diffusion_models/flux1-demo_fp8.safetensors',
      'text_encoders/clip_l.safetensors',
      'text_encoders/t5xxl_fp8_e4m3fn.safetensors',
      'vae/flux_vae.safetensors',
      'loras/portrait_detail.safetensors',
    ]);
    expect(needs.packs).toEqual([
      { node: 'ImageResizeKJv2 #1 in subgraph "Detail pass"', type: 'ImageResizeKJv2', cnrId: 'comfyui-kjnodes', auxId: undefined, ver: '1.1.2' },
      { node: 'SmartSharpen #2 in subgraph "Detail pass"', type: 'SmartSharpen', cnrId: undefined, auxId: 'acme/ComfyUI-Smart', ver: 'b'.repeat(40) },
    ]);
    // Subgraph instances, notes and ComfyUI's own nodes need nothing.
    expect(needs.unknownTypes).toEqual([]);
  });

  it('finds a subgraph defined inside another subgraph the same way', async () => {
    const flat = await fixture(WORKFLOW_FILES.fluxDetail);
    const nested = structuredClone(flat) as { definitions: { subgraphs: Record<string, unknown>[] } };
    const [outer, inner] = nested.definitions.subgraphs;
    outer!.definitions = { subgraphs: [inner] };
    nested.definitions.subgraphs = [outer!];
    expect(workflowRequirements(readWorkflow(nested))).toEqual(workflowRequirements(readWorkflow(flat)));
  });

  it('reports a loader file nothing provides and an unstamped custom node, without failing the rest', async () => {
    const wf = (await fixture(WORKFLOW_FILES.fluxDetail)) as { nodes: unknown[] };
    wf.nodes.push(
      { id: 12, type: 'LoraLoader', properties: { cnr_id: 'comfy-core', ver: '0.3.40' }, widgets_values: ['detail-slider.safetensors', 1, 1] },
      { id: 16, type: 'MysteryNode', properties: { 'Node name for S&R': 'MysteryNode' }, widgets_values: [] },
      { id: 17, type: 'Reroute', properties: {} },
    );
    const needs = workflowRequirements(readWorkflow(wf));
    const provided = new FileIndex();
    for (const m of needs.models) provided.add(m.directory!, m.name);
    const report = findMissing(needs, { hasFile: (folder, file) => provided.has(folder, file) });
    expect(report.missing.map((m) => m.message)).toEqual([
      'LoraLoader #12 needs `detail-slider.safetensors` in loras — add a source (a model with a url in the workflow, the manifest, or CIVITAI_MODELS / HUGGINGFACE_MODELS)',
      'node type `MysteryNode` (MysteryNode #16) is not provided by any custom node (the workflow names no cnr_id or aux_id for it) — add its custom node (COMFY_NODES, COMFY_CUSTOM_NODE_GIT_URLS or [nodes.…] in the manifest)',
    ]);
    expect(report.missing[0]).toMatchObject({ kind: 'model', node: 'LoraLoader #12', folder: 'loras', file: 'detail-slider.safetensors' });
    expect(report.unverified).toEqual([]);
  });

  it('reads an older save: no stamps, a legacy group node, links as arrays', async () => {
    const needs = workflowRequirements(readWorkflow(await fixture(WORKFLOW_FILES.sdxlUpscaleLegacy)));
    expect(needs.stamped).toBe(false);
    expect(needs.files.map((f) => [f.node, `${f.folder}/${f.file}`])).toEqual([
      ['CheckpointLoaderSimple #4', 'checkpoints/sd_xl_base_1.0.safetensors'],
      ['UpscaleModelLoader #0 in group node "Upscale x4"', 'upscale_models/4x-UltraSharp.pth'],
    ]);
    expect(needs.models.map((m) => m.name)).toEqual(['sd_xl_base_1.0.safetensors', '4x-UltraSharp.pth']);
    // Without stamps nothing tells ComfyUI's nodes from custom ones: the running ComfyUI decides.
    const types = needs.unknownTypes.map((t) => t.type);
    expect(types).toEqual(['CheckpointLoaderSimple', 'CLIPTextEncode', 'KSampler', 'VAEDecode', 'Image Resize', 'SaveImage', 'UpscaleModelLoader', 'ImageUpscaleWithModel']);
    const before = findMissing(needs, { hasFile: () => true });
    expect(before).toEqual({ missing: [], unverified: needs.unknownTypes });
    const running = findMissing(needs, { hasFile: () => true, installedTypes: new Set(types.filter((t) => t !== 'Image Resize')) });
    expect(running.missing.map((m) => m.type)).toEqual(['Image Resize']);
    expect(running.unverified).toEqual([]);
  });

  it('reads loader values saved by name, and Windows paths', () => {
    const needs = workflowRequirements(
      readWorkflow({
        nodes: [
          { id: 1, type: 'Power Lora Loader (rgthree)', properties: { cnr_id: 'rgthree-comfy', ver: '1.0.0' }, widgets_values: { lora_name: 'styles\\ink.safetensors', strength: 1 } },
          { id: 2, type: 'CheckpointLoaderSimple', properties: { cnr_id: 'comfy-core' }, widgets_values: ['None'] },
        ],
      }),
    );
    expect(needs.files).toEqual([{ folder: 'loras', file: 'styles/ink.safetensors', widget: 'lora_name', node: 'Power Lora Loader (rgthree) #1' }]);
  });
});

describe('API-format workflows', () => {
  it('reads loaders by input name and leaves custom node types to the running ComfyUI', async () => {
    const needs = workflowRequirements(parseWorkflow(await renderWorkflow(WORKFLOW_FILES.sdxlFacefix)));
    expect(needs).toMatchObject({ format: 'api', stamped: false, models: [], packs: [] });
    expect(needs.files.map((f) => [f.node, `${f.folder}/${f.file}`])).toEqual([
      ['CheckpointLoaderSimple #4', 'checkpoints/realisticVision_v60.safetensors'],
      ['LoraLoader #10', 'loras/add_detail.safetensors'],
      ['LoraLoaderModelOnly #11', 'loras/film_grain.safetensors'],
    ]);
    expect(needs.unknownTypes.map((t) => t.type)).toContain('FaceDetailer');
    const provided = new FileIndex().add('checkpoints', 'realisticVision_v60.safetensors').add('loras', 'add_detail.safetensors');
    const report = findMissing(needs, { hasFile: (f, n) => provided.has(f, n) });
    expect(report.missing.map((m) => m.node)).toEqual(['LoraLoaderModelOnly #11']);
    expect(report.unverified.map((t) => t.type)).toContain('UltralyticsDetectorProvider');
  });

  it('accepts the /prompt body that wraps it', async () => {
    const api = JSON.parse(await renderWorkflow(WORKFLOW_FILES.sdxlFacefix)) as unknown;
    expect(parseWorkflow(JSON.stringify({ prompt: api, client_id: 'x' })).nodes).toHaveLength(11);
  });
});

describe('input that is not a workflow', () => {
  it.each([
    ['{"hello": 1}', /is not a ComfyUI workflow: expected the UI format .* or the API format/],
    ['[]', /is not a ComfyUI workflow/],
    ['{"nodes": "all of them"}', /is not a ComfyUI workflow/],
    ['{"nodes": [{"id": 1}]}', /has malformed nodes: nodes\[0\] has no "id" and "type"/],
    ['{"nodes": [', /^not valid JSON: /],
    ['', /^not valid JSON: /],
  ])('refuses %s', (text, message) => {
    expect(() => parseWorkflow(text)).toThrow(WorkflowError);
    expect(() => parseWorkflow(text)).toThrow(message);
  });
});
