using System.Reflection;
using System.Text.Json.Nodes;
using Encore.Bench;
using Encore.Formats.Checkpoints;
using Encore.Formats.Gguf;
using Encore.Models;
using Xunit;

namespace Encore.Cli.Tests;

/// <summary>
/// A tiny random Gemma 2 (sliding windows of 4 on the even layers, both soft caps) exported to GGUF "gemma2":
/// llama.cpp, through the peer plug-in, generates the same greedy tokens as Encore, past the window.
/// </summary>
public class Gemma2LlamaCppTests
{
    static string RecordedPlugin() =>
        typeof(Program).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "LlamaCppPeer").Value!;

    [Fact]
    public void LlamaCppReproducesEncoresGreedyTokensOnATinyGemma2()
    {
        var json = JsonNode.Parse("""
            {"model_type": "gemma2", "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "query_pre_attn_scalar": 16,
             "sliding_window": 4, "attn_logit_softcapping": 2.0, "final_logit_softcapping": 10.0, "max_position_embeddings": 64}
            """)!.AsObject();
        var config = new Gemma2Architecture().ReadConfig(json, "config.json");
        using var model = (DecoderOnlyModel)LanguageModel.Create(config, seed: 11);
        // Norm weights away from 0, post-norms near 2 and small embeddings, so every part takes part and the
        // blocks' writes outweigh the token's own embedding (a tied head then does not just repeat the input).
        var r = new Random(5);
        foreach (var p in model.Parameters.All)
        {
            var w = p.Value.AsSpan<float>();
            bool post = p.Name.EndsWith("post_norm.weight", StringComparison.Ordinal);
            if (p.Value.Rank == 1) for (int i = 0; i < w.Length; i++) w[i] = (float)(r.NextDouble() - 0.5) * 0.6f + (post ? 1 : 0);
            else if (p.Name == LanguageModel.EmbedTokens) for (int i = 0; i < w.Length; i++) w[i] *= 0.5f;
        }
        int[] prompt = [2, 17, 301, 45, 99, 7, 260, 33, 81, 140, 12, 5];
        const int steps = 12;
        var expected = new List<int>();
        using (var cache = model.CreateCache(1, prompt.Length + steps))
        {
            int[] input = prompt;
            while (expected.Count < steps)
            {
                var last = model.Forward(input, 1, cache: cache).Value.ToFloatArray().AsSpan()[^config.VocabSize..].ToArray();
                expected.Add(Array.IndexOf(last, last.Max()));
                input = [expected[^1]];
            }
        }

        Assert.True(expected.Distinct().Count() >= 4, $"greedy tokens hardly vary: {string.Join(",", expected)}");
        var factory = GgufPeers.TryLoadLlamaCpp(RecordedPlugin(), out var reason);
        Assert.True(factory != null, reason);
        var dir = Directory.CreateTempSubdirectory("encore-gemma2-gguf-").FullName;
        try
        {
            var path = Path.Combine(dir, "gemma2.gguf");
            GgufExport.Write(model, null, path);
            using var peer = factory.Open(path, 64, prompt.Length, 1);
            var (_, _, tokens) = peer.Generate(prompt, steps, 0, encoderDecoder: false);
            Assert.Equal(expected, tokens);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
