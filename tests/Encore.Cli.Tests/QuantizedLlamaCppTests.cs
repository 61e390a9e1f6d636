using System.Reflection;
using Encore.Autograd;
using Encore.Autograd.Optim;
using Encore.Bench;
using Encore.Formats.Gguf;
using Encore.Models;
using Encore.Tensors;
using Xunit;
using Xunit.Abstractions;

namespace Encore.Cli.Tests;

/// <summary>
/// Trained tiny Llama and T5 models exported to GGUF in f32, Q8_0 and Q4_0: llama.cpp, through the peer plug-in,
/// generates Encore's greedy tokens at every quantization. The models learn a noisy count (each token is followed
/// by the next with probability 0.6 and by the one after it with 0.4; the T5 counts on from its source's token),
/// so greedy steps have the margins of a trained model's (log 0.6/0.4 ≈ 0.4) rather than a random one's near-ties.
/// </summary>
public class QuantizedLlamaCppTests(ITestOutputHelper output)
{
    const int States = 96, First = 10, SequenceLength = 24, Prompts = 6, Steps = 12;

    static string RecordedPlugin() =>
        typeof(Program).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "LlamaCppPeer").Value!;

    static int Step(int token, int by) => First + (token - First + by) % States;

    static int[] Walk(Random r, int length)
    {
        var seq = new int[length];
        seq[0] = First + r.Next(States);
        for (int i = 1; i < length; i++) seq[i] = Step(seq[i - 1], r.NextDouble() < 0.6 ? 1 : 2);
        return seq;
    }

    // A prompt from a walk: its first half for the Llama; for the T5 its first token repeated as often, so the
    // source says where the count starts wherever the encoder looks.
    static int[] Prompt(int[] walk, bool t5) => t5 ? Enumerable.Repeat(walk[0], SequenceLength / 2).ToArray() : walk[..(SequenceLength / 2)];

    static void Train(LanguageModel model)
    {
        var r = new Random(11);
        using var opt = new AdamW(model.Parameters.All, new AdamWOptions { WeightDecay = 0 }) { LearningRate = 1e-2 };
        const int batch = 16, half = SequenceLength / 2;
        for (int step = 0; step < 300; step++)
        {
            opt.ZeroGrad();
            using var tape = Tape.Record();
            var rows = Enumerable.Range(0, batch).Select(_ => Walk(r, SequenceLength + 1)).ToArray();
            Var loss;
            if (model is EncoderDecoderModel ed)
            {
                // Source: the walk's start repeated (Prompt); target: the walk after it, teacher-forced after the decoder start.
                var src = rows.SelectMany(w => Prompt(w, t5: true)).ToArray();
                var inputs = rows.SelectMany(w => new[] { ed.Config.DecoderStartTokenId }.Concat(w[1..half])).ToArray();
                var labels = rows.SelectMany(w => w[1..(half + 1)]).ToArray();
                loss = Ops.CrossEntropy(Ops.Reshape(ed.Forward(src, null, inputs, batch), labels.Length, ed.Config.VocabSize), labels);
            }
            else
            {
                var dec = (DecoderOnlyModel)model;
                var inputs = rows.SelectMany(w => w[..SequenceLength]).ToArray();
                var labels = rows.SelectMany(w => w[1..]).ToArray();
                loss = Ops.CrossEntropy(Ops.Reshape(dec.Forward(inputs, batch), labels.Length, dec.Config.VocabSize), labels);
            }
            tape.Backward(loss);
            opt.Update();
        }
    }

    // Greedy tokens and the smallest gap between the best and the second-best logit along the way.
    static (int[] Tokens, float Margin) Greedy(LanguageModel model, int[] prompt)
    {
        int v = model.Config.VocabSize;
        var tokens = new List<int>();
        float margin = float.PositiveInfinity;
        int ArgMax(ReadOnlySpan<float> row)
        {
            int best = 0;
            for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
            float second = float.NegativeInfinity;
            for (int i = 0; i < row.Length; i++) if (i != best) second = Math.Max(second, row[i]);
            margin = Math.Min(margin, row[best] - second);
            return best;
        }
        if (model is EncoderDecoderModel ed)
        {
            using var memory = ed.Encode(prompt, 1);
            using var cache = ed.CreateCache(1, Steps + 1, prompt.Length);
            int next = ed.Config.DecoderStartTokenId;
            while (tokens.Count < Steps)
            {
                using var logits = ed.Decode(memory, null, [next], 1, cache);
                tokens.Add(next = ArgMax(logits.Value.AsReadOnlySpan<float>()[^v..]));
            }
        }
        else
        {
            var dec = (DecoderOnlyModel)model;
            using var cache = dec.CreateCache(1, prompt.Length + Steps);
            int[] input = prompt;
            while (tokens.Count < Steps)
            {
                using var logits = dec.Forward(input, 1, cache: cache);
                tokens.Add(ArgMax(logits.Value.AsReadOnlySpan<float>()[^v..]));
                input = [tokens[^1]];
            }
        }
        return ([.. tokens], margin);
    }

    [Theory]
    [InlineData("tiny-llama")]
    [InlineData("tiny-t5")]
    public void LlamaCppGeneratesEncoresGreedyTokensAtEveryQuantization(string name)
    {
        var config = PeerModels.Config(name);
        bool t5 = config.Family == ModelFamily.EncoderDecoder;
        using var model = LanguageModel.Create(config, seed: 5);
        Train(model);
        var r = new Random(17);
        var prompts = Enumerable.Range(0, Prompts).Select(_ => Prompt(Walk(r, SequenceLength), t5)).ToArray();

        var factory = GgufPeers.TryLoadLlamaCpp(RecordedPlugin(), out var reason);
        Assert.True(factory != null, reason);
        var dir = Directory.CreateTempSubdirectory("encore-quant-gguf-").FullName;
        // Conversion is in place and lossy: each type starts from the trained f32 weights, as its GGUF does.
        var f32 = model.Parameters.All.Where(p => model.Parameters.MayStayCompact(p.Name)).ToDictionary(p => p.Name, p => p.Value.Clone());
        var agreement = new Dictionary<DType, int>();
        try
        {
            foreach (var (dtype, ggml) in new[] { (DType.F32, GgmlType.F32), (DType.Q8_0, GgmlType.Q8_0), (DType.Q4_0, GgmlType.Q4_0) })
            {
                foreach (var (n, t) in f32) model.Parameters.Assign(n, t.Clone());
                var path = Path.Combine(dir, $"{name}-{dtype}.gguf");
                GgufExport.Write(model, null, path, new GgufExportOptions { Matrices = ggml });
                model.ConvertWeights(dtype);
                using var peer = factory.Open(path, SequenceLength + Steps + 8, SequenceLength, 1);
                int same = 0;
                float margin = float.PositiveInfinity;
                foreach (var prompt in prompts)
                {
                    var (expected, m) = Greedy(model, prompt);
                    margin = Math.Min(margin, m);
                    var (_, _, tokens) = peer.Generate(prompt, Steps, config.DecoderStartTokenId, t5);
                    same += expected.Zip(tokens).TakeWhile(p => p.First == p.Second).Count();
                    // The count it learned: each greedy token one or two after the last (mostly one; where the model
                    // learned 0.6 against 0.4 less well, two: steps with small margins are in the test too). The T5's
                    // first token need not follow its source's in these few steps.
                    for (int i = t5 ? 1 : 0; i < Steps; i++)
                    {
                        int last = i == 0 ? prompt[^1] : expected[i - 1];
                        Assert.True(expected[i] == Step(last, 1) || expected[i] == Step(last, 2), $"{name} {dtype}: greedy {string.Join(",", expected)} after {last} is not a count");
                    }
                }
                output.WriteLine($"{name} {dtype}: llama.cpp agrees on {same} of {Prompts * Steps} greedy tokens; smallest logit margin {margin:0.###}");
                agreement[dtype] = same;
            }
        }
        finally
        {
            foreach (var t in f32.Values) t.Dispose();
            Directory.Delete(dir, recursive: true);
        }
        Assert.Equal(Prompts * Steps, agreement[DType.F32]);
        Assert.True(agreement[DType.Q4_0] >= agreement[DType.Q8_0], $"{name}: llama.cpp agrees on {agreement[DType.Q4_0]} Q4_0 tokens, fewer than the {agreement[DType.Q8_0]} of Q8_0");
        if (!t5) Assert.All(agreement.Values, same => Assert.Equal(Prompts * Steps, same));
    }
}
