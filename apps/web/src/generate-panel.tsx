import { useEffect, useState } from 'preact/hooks';

import { SAMPLER_NAMES } from '../../gateway/src/common/samplers';
import { api, ApiError } from './api';
import { curlOf } from './format';
import { JobProgress } from './job-progress';
import type { GenerateRequest, Job, ModesView, PageJob } from './types';

interface Props {
  modes: ModesView;
  job: PageJob | undefined;
  request: GenerateRequest | undefined;
  authRequired: boolean;
  onSubmitted: (job: Job, request: GenerateRequest) => void;
}

/** The form (a mode's defaults filled in when it is picked), then the job it queued: progress, switch, image. */
export function GeneratePanel({ modes, job, request, authRequired, onSubmitted }: Props) {
  const [mode, setMode] = useState(modes.default_mode);
  const [prompt, setPrompt] = useState('');
  const [negative, setNegative] = useState('');
  const [size, setSize] = useState('');
  const [steps, setSteps] = useState(0);
  const [guidance, setGuidance] = useState(0);
  const [sampler, setSampler] = useState('default');
  const [randomSeed, setRandomSeed] = useState(true);
  const [seed, setSeed] = useState(42);
  const [superres, setSuperres] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  /** The command in plain sight, where the clipboard is not offered (a page over plain http on another host). */
  const [showCurl, setShowCurl] = useState(false);

  const definition = modes.modes[mode];
  // A mode that left the file (a reload) gives way to the default mode.
  useEffect(() => {
    if (!definition) setMode(modes.default_mode);
  }, [definition, modes.default_mode]);
  // The picked mode's defaults, whenever the pick or the mode's definition changes (not on every re-read of it).
  const definitionText = JSON.stringify(definition ?? null);
  useEffect(() => {
    if (!definition) return;
    setSize(definition.default_size);
    setSteps(definition.default_steps);
    setGuidance(definition.default_guidance);
    setSampler(definition.scheduler);
    setSuperres(false);
  }, [mode, definitionText]);

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    const body: GenerateRequest = {
      prompt,
      mode,
      ...(negative && { negative_prompt: negative }),
      size,
      num_inference_steps: steps,
      guidance_scale: guidance,
      ...(sampler !== definition?.scheduler && { scheduler: sampler }),
      ...(!randomSeed && { seed }),
      ...(superres && { superres: true }),
    };
    try {
      const queued = await api<Job>('POST', '/api/jobs', body);
      onSubmitted(queued, body);
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : String(caught));
    }
  };

  const copy = async () => {
    if (!request) return;
    try {
      await navigator.clipboard.writeText(curlOf(request, location.origin, authRequired));
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      setShowCurl(true);
    }
  };

  const description = definition?.metadata?.['description'];
  return (
    <section class="panel" aria-labelledby="generate-title">
      <h2 id="generate-title">Generate</h2>
      <form class="generate" onSubmit={(event) => void submit(event)}>
        <div class="field">
          <label for="field-mode">Mode</label>
          <select id="field-mode" name="mode" value={mode} onChange={(event) => setMode(event.currentTarget.value)}>
            {Object.keys(modes.modes).map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </div>
        {typeof description === 'string' && <p class="hint">{description}</p>}
        <div class="field wide">
          <label for="field-prompt">Prompt</label>
          <textarea
            id="field-prompt"
            name="prompt"
            required
            rows={3}
            value={prompt}
            onInput={(event) => setPrompt(event.currentTarget.value)}
          />
        </div>
        <div class="field wide">
          <label for="field-negative-prompt">Negative prompt</label>
          <textarea
            id="field-negative-prompt"
            name="negative_prompt"
            rows={2}
            value={negative}
            onInput={(event) => setNegative(event.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="field-size">Size</label>
          <input
            id="field-size"
            name="size"
            required
            pattern="\d+x\d+"
            value={size}
            onInput={(event) => setSize(event.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="field-steps">Steps</label>
          <input
            id="field-steps"
            name="steps"
            type="number"
            min={1}
            max={1000}
            required
            value={steps}
            onInput={(event) => setSteps(event.currentTarget.valueAsNumber)}
          />
        </div>
        <div class="field">
          <label for="field-guidance">Guidance</label>
          <input
            id="field-guidance"
            name="guidance"
            type="number"
            min={0}
            max={30}
            step="any"
            required
            value={guidance}
            onInput={(event) => setGuidance(event.currentTarget.valueAsNumber)}
          />
        </div>
        <div class="field">
          <label for="field-sampler">Sampler</label>
          <select
            id="field-sampler"
            name="sampler"
            value={sampler}
            onChange={(event) => setSampler(event.currentTarget.value)}
          >
            {SAMPLER_NAMES.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </div>
        <label class="check">
          <input
            type="checkbox"
            checked={randomSeed}
            onChange={(event) => setRandomSeed(event.currentTarget.checked)}
          />
          Random seed
        </label>
        <div class="field">
          <label for="field-seed">Seed</label>
          <input
            id="field-seed"
            name="seed"
            type="number"
            min={0}
            disabled={randomSeed}
            value={seed}
            onInput={(event) => setSeed(event.currentTarget.valueAsNumber)}
          />
        </div>
        {definition?.superres && (
          <label class="check">
            <input type="checkbox" checked={superres} onChange={(event) => setSuperres(event.currentTarget.checked)} />
            Superres (×{definition.superres.scale ?? '?'})
          </label>
        )}
        <button type="submit" class="primary wide">
          Generate
        </button>
        {error && (
          <p role="alert" class="error wide">
            {error}
          </p>
        )}
      </form>
      {job && (
        <div class="result" data-job-id={job.id}>
          <JobProgress job={job} />
          {job.state === 'completed' && (
            <figure>
              <img src={`/api/jobs/${job.id}/image`} alt="Generated image" />
              <figcaption>
                <dl class="params">
                  <dt>mode</dt>
                  <dd>{job.mode}</dd>
                  <dt>seed</dt>
                  <dd>{job.seed}</dd>
                  <dt>host</dt>
                  <dd>{job.host}</dd>
                  {request && (
                    <>
                      <dt>size</dt>
                      <dd>{request.size}</dd>
                      <dt>steps</dt>
                      <dd>{request.num_inference_steps}</dd>
                      <dt>guidance</dt>
                      <dd>{request.guidance_scale}</dd>
                      <dt>prompt</dt>
                      <dd>{request.prompt}</dd>
                      {request.superres && (
                        <>
                          <dt>superres</dt>
                          <dd>yes</dd>
                        </>
                      )}
                    </>
                  )}
                  <dt>time</dt>
                  <dd>{job.generate_ms} ms</dd>
                </dl>
                {request && (
                  <button type="button" onClick={() => void copy()}>
                    {copied ? 'Copied' : 'Copy as curl'}
                  </button>
                )}
                {request && showCurl && <pre class="curl">{curlOf(request, location.origin, authRequired)}</pre>}
              </figcaption>
            </figure>
          )}
        </div>
      )}
    </section>
  );
}
