// Swift/super routing (ServerOptions.SuperModel): after a generation request is validated, the served (swift)
// model's first decoding step scores each of its prompts (one at a time, off the request thread, outside the
// decode batch), and a request whose highest score is above the threshold is scheduled on the super model's
// own batch instead. The decision is made before any token is generated, so streaming is unchanged.
using System.Diagnostics;
using Encore.Formats.Tokenization;
using Encore.Generation;
using Encore.Models;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Encore.Server;

public sealed partial class EncoreServer
{
    /// <summary>The response header that names the model that answered a routed request: swift or super.</summary>
    public const string RoutedToHeader = "X-Encore-Routed-To";

    readonly SemaphoreSlim _routingSlot = new(1, 1);
    RoutedGenerator? _router;

    /// <summary>With <see cref="ServerOptions.SuperModel"/>, the scheduler of the super model's batch; else null.</summary>
    public InferenceScheduler? SuperScheduler { get; private set; }

    /// <summary>The router of a server with a super model, checked against the served model: both generate and share the tokenizer, and the super model's cache fits.</summary>
    static RoutedGenerator CreateRouter(Generator? swift, TextTokenizer tokenizer, ServerOptions options, int context)
    {
        var super = options.SuperModel!;
        if (swift is null) throw new ArgumentException("--super-model: the served model is encoder-only and generates nothing to route");
        if (super is not (EncoderDecoderModel or DecoderOnlyModel)) throw new ArgumentException("--super-model: an encoder-only model does not generate text");
        var router = new RoutedGenerator(swift, new Generator(super, tokenizer), options.Routing, "the served (swift) model", "--super-model");
        try
        {
            ModelMemory.EnsureFits(super.Config, ModelMemory.CacheBytes(super.Config, options.MaxBatch, context, options.KvCacheDType));
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"--super-model with --max-batch {options.MaxBatch} × --context {context}: {e.Message}", e);
        }
        return router;
    }

    /// <summary>Starts the super model's scheduler; its figures appear in <c>/metrics</c> as encore_super_*.</summary>
    void StartRouting(RoutedGenerator router)
    {
        _router = router;
        var superMetrics = new ServerMetrics();
        SuperScheduler = new InferenceScheduler(router.Super, _options.MaxBatch, _context, _options.MaxQueue, superMetrics, _options.KvCacheDType);
        Metrics.Super = superMetrics;
    }

    /// <summary>The prompts as the super model reads them, checked against its context; lowers <paramref name="maxNew"/> to what both models leave.</summary>
    int[][] EncodeForSuper(IReadOnlyList<string> texts, CompletionApi api, ref int maxNew)
    {
        var prompts = new int[texts.Count][];
        for (int i = 0; i < prompts.Length; i++)
        {
            try
            {
                prompts[i] = _router!.Super.EncodePrompt(texts[i]);
            }
            catch (ArgumentException e)
            {
                throw new ApiException(400, e.Message, api.PromptParam);
            }
            if (prompts[i].Length > SuperScheduler!.MaxPromptLength)
                throw new ApiException(400, $"The super model's maximum context length is {SuperScheduler.MaxPromptLength} tokens; the prompt has {prompts[i].Length}",
                    api.PromptParam, code: "context_length_exceeded");
            maxNew = Math.Min(maxNew, SuperScheduler.MaxNewTokens(prompts[i].Length));
        }
        return prompts;
    }

    /// <summary>Scores the request's prompts with the swift model's first step and picks the model; says which in the response header.</summary>
    async Task<ValidatedRequest> RouteAsync(ValidatedRequest plan, HttpContext http, CancellationToken ct)
    {
        var router = _router!;
        double score = double.NegativeInfinity;
        await _routingSlot.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // A forward pass is CPU-bound: off the request thread, on the kernel pool.
            score = await Task.Run(() => plan.Prompts.Max(p => router.ScorePrompt(p, plan.Options)), ct).ConfigureAwait(false);
        }
        finally
        {
            _routingSlot.Release();
        }
        var model = router.Options.Routes(score) ? RoutedModel.Super : RoutedModel.Swift;
        Metrics.RecordRouted(model);
        http.Response.Headers[RoutedToHeader] = model == RoutedModel.Super ? "super" : "swift";
        return plan with { Prompts = model == RoutedModel.Super ? plan.SuperPrompts! : plan.Prompts, Route = (model, score) };
    }

    /// <summary>The request log line of a routing server: the usual fields, then the model that answered and the swift model's score.</summary>
    void LogRouted(string id, string? path, string modelId, int status, int promptTokens, ScheduledRequest? scheduled, long start, (RoutedModel Model, double Score)? route)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        _requestLog.LogInformation("request {Id} {Path} model={Model} status={Status} prompt_tokens={PromptTokens} completion_tokens={CompletionTokens} first_token_s={FirstToken} total_s={Total:0.000} routed={Routed} score={Score}",
            id, path, modelId, status, promptTokens, scheduled?.CompletionTokens ?? 0,
            scheduled?.FirstTokenSeconds is { } ft ? ft.ToString("0.000", inv) : "-", Stopwatch.GetElapsedTime(start).TotalSeconds,
            route is { } r ? (r.Model == RoutedModel.Super ? "super" : "swift") : "-", route is { } s ? s.Score.ToString("0.####", inv) : "-");
    }
}
