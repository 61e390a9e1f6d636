// LoRA adapters in Hugging Face PEFT's layout (docs/source/developer_guides/checkpoint.md of
// huggingface/peft): a directory with adapter_config.json (LoraConfig's fields: peft_type "LORA", r,
// lora_alpha, lora_dropout, target_modules, base_model_name_or_path, …) and adapter_model.safetensors,
// whose tensors are named after the base model's modules as the base's own model_type names them:
// base_model.model.<module>.lora_A.weight (r, in) and .lora_B.weight (out, r), e.g.
// base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight for a T5 base or
// base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight for a Llama one. The module names come
// from the base's IArchitecture (the tensor name of the layer's weight, less ".weight"), so every
// family Encore reads gets PEFT's names without a table of its own.
//
// An adapter is checked against its base before any value is read: every tensor must name a linear
// layer of the base, with the base's shapes and the config's rank, and every base layer the config's
// target_modules select must have its two tensors (an adapter made for a deeper or other base).
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Encore.Models;
using Encore.Tensors;
using Tensor = Encore.Tensors.Tensor;

namespace Encore.Formats.Checkpoints;

/// <summary>Reads and writes <see cref="LoraAdapter"/>s as PEFT's <c>adapter_config.json</c> + <c>adapter_model.safetensors</c>.</summary>
public static class PeftAdapter
{
    /// <summary>The adapter's configuration file.</summary>
    public const string ConfigFile = "adapter_config.json";

    /// <summary>The adapter's weights.</summary>
    public const string WeightsFile = "adapter_model.safetensors";

    /// <summary>What PEFT puts before a module's name (PeftModel wraps LoraModel wraps the base model).</summary>
    public const string Prefix = "base_model.model.";

    const long MaxConfigBytes = 1 << 20;

    /// <summary>True when <paramref name="dir"/> holds an adapter (its config file).</summary>
    public static bool IsAdapterDirectory(string dir) => File.Exists(Path.Combine(dir, ConfigFile));

    /// <summary>
    /// <paramref name="dir"/> when it holds an adapter; otherwise, for the run folder of a LoRA training run, its
    /// newest complete <c>checkpoint-N</c>. Throws naming the directory when it is neither.
    /// </summary>
    public static string Resolve(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (IsAdapterDirectory(dir)) return dir;
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: no such directory");
        var newest = Directory.GetDirectories(dir, "checkpoint-*")
            .Select(d => (Dir: d, Step: long.TryParse(Path.GetFileName(d)["checkpoint-".Length..], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out long s) ? s : -1))
            .Where(c => c.Step >= 0 && IsAdapterDirectory(c.Dir))
            .OrderByDescending(c => c.Step)
            .FirstOrDefault();
        return newest.Dir ?? throw new CheckpointFormatException($"{dir}: no {ConfigFile}, and no checkpoint-N folder with one (is it a LoRA adapter or a LoRA training run?)");
    }

    /// <summary>
    /// Writes <paramref name="adapter"/> of <paramref name="model"/> into <paramref name="dir"/>, its tensors named as
    /// <paramref name="modelType"/> names the base's modules (each file atomically, the config last).
    /// <paramref name="baseModel"/> becomes base_model_name_or_path.
    /// </summary>
    public static void Save(LoraAdapter adapter, LanguageModel model, string dir, string modelType, string? baseModel)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        ArgumentNullException.ThrowIfNull(model);
        var arch = Architectures.Get(modelType, dir);
        var names = ModuleNames.Of(model, arch);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        var modules = new List<string>();
        try
        {
            foreach (var m in adapter.Modules)
            {
                var module = names.Primary(m.Scope)
                    ?? throw new ArgumentException($"model_type '{modelType}' has no module for layer '{m.Scope}': an adapter on it cannot be written in PEFT's layout");
                modules.Add(module);
                tensors.Add(new(Prefix + module + ".lora_A.weight", adapter.Parameters[LoraAdapter.AName(m.Scope)].Value.Clone()));
                tensors.Add(new(Prefix + module + ".lora_B.weight", adapter.Parameters[LoraAdapter.BName(m.Scope)].Value.Clone()));
            }
            Directory.CreateDirectory(dir);
            SafetensorsFile.Write(Path.Combine(dir, WeightsFile), tensors);
        }
        finally
        {
            foreach (var t in tensors) t.Value.Dispose();
        }
        var o = adapter.Options;
        var config = new JsonObject
        {
            ["alpha_pattern"] = new JsonObject(),
            ["base_model_name_or_path"] = baseModel,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["lora_alpha"] = o.Alpha,
            ["lora_dropout"] = o.Dropout,
            ["modules_to_save"] = null,
            ["peft_type"] = "LORA",
            ["r"] = o.Rank,
            ["rank_pattern"] = new JsonObject(),
            ["revision"] = null,
            ["target_modules"] = new JsonArray([.. names.TargetModules(modules).Select(t => (JsonNode)t)]),
            ["task_type"] = model.Config.Family switch
            {
                ModelFamily.EncoderDecoder => "SEQ_2_SEQ_LM",
                ModelFamily.DecoderOnly => "CAUSAL_LM",
                _ => null,
            },
            ["use_dora"] = false,
            ["use_rslora"] = o.RankStabilized,
        };
        AtomicFile.WriteAllText(Path.Combine(dir, ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>What adapter_config.json says, checked (<see cref="ReadConfig"/>).</summary>
    /// <param name="Options">Rank, alpha, dropout, rank stabilization (the targets are those of the tensors, once read).</param>
    /// <param name="TargetModules">target_modules as a list of names, or null when it is a pattern.</param>
    /// <param name="TargetPattern">target_modules as a regular expression (matched against whole module names), or null.</param>
    /// <param name="BaseModel">base_model_name_or_path.</param>
    public sealed record Config(LoraOptions Options, IReadOnlyList<string>? TargetModules, string? TargetPattern, string? BaseModel)
    {
        /// <summary>Whether target_modules selects the module <paramref name="module"/> (PEFT: a name equal to it or ending in "." + it; a pattern matching all of it).</summary>
        public bool Targets(string module)
        {
            if (TargetModules != null) return TargetModules.Any(t => module == t || module.EndsWith("." + t, StringComparison.Ordinal));
            return Regex.IsMatch(module, "^(?:" + TargetPattern + ")$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>Reads and checks <c>adapter_config.json</c> in <paramref name="dir"/>; the LoRA variants Encore does not compute are refused by name.</summary>
    public static Config ReadConfig(string dir)
    {
        var path = Path.Combine(dir, ConfigFile);
        if (!File.Exists(path)) throw new FileNotFoundException($"{dir}: no {ConfigFile} (is this a PEFT adapter directory?)", path);
        if (new FileInfo(path).Length > MaxConfigBytes) throw new CheckpointFormatException($"{path}: larger than {MaxConfigBytes} bytes");
        JsonObject json;
        try
        {
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length > MaxConfigBytes) throw new CheckpointFormatException($"{path}: grew past {MaxConfigBytes} bytes while being read");
            JsonText.Check(bytes, path, maxDepth: 16);
            json = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = 16, AllowDuplicateProperties = false }) as JsonObject
                ?? throw new CheckpointFormatException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"{path}: not valid JSON ({e.Message})", e);
        }
        string peft = String(json, "peft_type", path) ?? throw new CheckpointFormatException($"{path}: no 'peft_type' (a PEFT adapter config names its method, \"LORA\")");
        if (peft != "LORA") throw new CheckpointFormatException($"{path}: peft_type '{peft}' is not LoRA; only LoRA adapters are read");
        double r = Number(json, "r", path) ?? 8;   // PEFT's defaults where a field is left out
        if (r != Math.Floor(r) || r < 1 || r > LoraOptions.MaxRank) throw new CheckpointFormatException($"{path}: r = {r} is not a rank in [1, {LoraOptions.MaxRank}]");
        int rank = (int)r;
        double alpha = Number(json, "lora_alpha", path) ?? 8;
        double dropout = Number(json, "lora_dropout", path) ?? 0;
        if (!(alpha > 0 && alpha < 1e6)) throw new CheckpointFormatException($"{path}: lora_alpha = {alpha} is not a positive scale");
        if (!(dropout >= 0 && dropout < 1)) throw new CheckpointFormatException($"{path}: lora_dropout = {dropout} is outside [0, 1)");
        // Variants whose math Encore does not compute: refused rather than silently applied as plain LoRA.
        if (Bool(json, "use_dora", path) == true) throw new CheckpointFormatException($"{path}: use_dora is true; DoRA adapters are not supported");
        if (Bool(json, "fan_in_fan_out", path) == true) throw new CheckpointFormatException($"{path}: fan_in_fan_out is true (GPT-2 Conv1D layers); Encore's layers are nn.Linear");
        if (String(json, "bias", path) is { } bias && bias != "none") throw new CheckpointFormatException($"{path}: bias '{bias}' trains biases too; only bias \"none\" is supported");
        foreach (var field in new[] { "rank_pattern", "alpha_pattern" })
            if (json[field] is JsonObject o && o.Count > 0) throw new CheckpointFormatException($"{path}: {field} gives some modules their own rank or alpha; not supported");
        foreach (var field in new[] { "modules_to_save", "layers_to_transform", "layer_replication" })
            if (json[field] is JsonNode n && !(n is JsonArray { Count: 0 }))
                throw new CheckpointFormatException($"{path}: {field} is set; not supported (only low-rank deltas on linear layers are)");
        bool rs = Bool(json, "use_rslora", path) ?? false;
        List<string>? list = null;
        string? pattern = null;
        switch (json["target_modules"])
        {
            case JsonArray a:
                list = [];
                foreach (var item in a)
                    list.Add(item is JsonValue v && v.TryGetValue(out string? s) && s.Length > 0 ? s : throw new CheckpointFormatException($"{path}: target_modules holds {item?.ToJsonString() ?? "null"}, not a module name"));
                if (list.Count == 0) throw new CheckpointFormatException($"{path}: target_modules is empty");
                break;
            case JsonValue v when v.TryGetValue(out string? s) && s.Length > 0:
                pattern = s;
                try
                {
                    _ = new Regex(s, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
                }
                catch (ArgumentException e)
                {
                    throw new CheckpointFormatException($"{path}: target_modules '{s}' is not a regular expression ({e.Message})");
                }
                break;
            default:
                throw new CheckpointFormatException($"{path}: no 'target_modules' (a list of module names or a pattern)");
        }
        var options = new LoraOptions { Rank = rank, Alpha = (float)alpha, Dropout = (float)dropout, RankStabilized = rs, Targets = LoraTargets.All };
        return new Config(options, list, pattern, String(json, "base_model_name_or_path", path));
    }

    static string? String(JsonObject json, string field, string path) => json[field] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        var other => throw new CheckpointFormatException($"{path}: '{field}' is {other.ToJsonString()}, not a string"),
    };

    static double? Number(JsonObject json, string field, string path) => json[field] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.GetValue<double>(),
        var other => throw new CheckpointFormatException($"{path}: '{field}' is {other.ToJsonString()}, not a number"),
    };

    static bool? Bool(JsonObject json, string field, string path) => json[field] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        var other => throw new CheckpointFormatException($"{path}: '{field}' is {other.ToJsonString()}, not true or false"),
    };

    /// <summary>
    /// Loads the adapter in <paramref name="dir"/> for <paramref name="model"/>, whose checkpoint names its modules as
    /// <paramref name="modelType"/> does. Everything is checked against the model before a value is read; a mismatch
    /// throws <see cref="CheckpointFormatException"/> naming the module and what does not fit. The adapter's
    /// <see cref="LoraAdapter.Name"/> is the directory's name.
    /// </summary>
    public static LoraAdapter Load(string dir, LanguageModel model, string modelType)
    {
        ArgumentNullException.ThrowIfNull(model);
        var plan = Check(dir, model, modelType);
        var adapter = LoraAdapter.CreateForLoading(model, plan.Config.Options with { Targets = plan.Targets }, plan.Tensors.Select(t => t.Scope).Distinct());
        adapter.Name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
        try
        {
            Copy(plan, adapter);
            return adapter;
        }
        catch
        {
            adapter.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies the adapter saved in <paramref name="dir"/> into <paramref name="adapter"/>'s parameters (kept, so an
    /// optimizer built on them stays valid): how a LoRA training run resumes. Its layers and rank must be the same.
    /// </summary>
    public static void LoadInto(LoraAdapter adapter, LanguageModel model, string dir, string modelType)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        var plan = Check(dir, model, modelType);
        var saved = plan.Tensors.Select(t => t.Scope).Distinct().Order(StringComparer.Ordinal);
        var ours = adapter.Modules.Select(m => m.Scope).Order(StringComparer.Ordinal);
        if (!saved.SequenceEqual(ours) || plan.Config.Options.Rank != adapter.Options.Rank)
            throw new CheckpointFormatException($"{dir}: the adapter saved there (rank {plan.Config.Options.Rank}, {saved.Count()} layers) is not the one being trained (rank {adapter.Options.Rank}, {adapter.Modules.Count} layers)");
        Copy(plan, adapter);
    }

    sealed record TensorPlan(string Name, string Scope, bool IsA);

    sealed record Plan(string Path, Config Config, List<TensorPlan> Tensors, LoraTargets Targets);

    // Reads the config and the weights' header (no values) and checks them against the model.
    static Plan Check(string dir, LanguageModel model, string modelType)
    {
        var config = ReadConfig(dir);
        var path = Path.Combine(dir, WeightsFile);
        if (!File.Exists(path))
        {
            if (File.Exists(Path.Combine(dir, "adapter_model.bin")))
                throw new CheckpointFormatException($"{dir}: adapter_model.bin is a pickle, which Encore does not read; save the adapter with safe_serialization (adapter_model.safetensors)");
            throw new FileNotFoundException($"{dir}: no {WeightsFile}", path);
        }
        var arch = Architectures.Get(modelType, dir);
        var names = ModuleNames.Of(model, arch);
        int rank = config.Options.Rank;
        using var file = SafetensorsFile.Open(path);
        var tensors = new List<TensorPlan>();
        var seen = new Dictionary<string, (bool A, bool B)>(StringComparer.Ordinal);
        foreach (var name in file.Names)
        {
            bool isA = name.EndsWith(".lora_A.weight", StringComparison.Ordinal);
            if (!name.StartsWith(Prefix, StringComparison.Ordinal) || !(isA || name.EndsWith(".lora_B.weight", StringComparison.Ordinal)))
                throw new CheckpointFormatException($"{path}: tensor '{name}' is not a LoRA matrix ({Prefix}<module>.lora_A.weight or .lora_B.weight); only plain LoRA on linear layers is supported");
            var module = name[Prefix.Length..^".lora_A.weight".Length];
            var layer = names.Layer(module)
                ?? throw new CheckpointFormatException($"{path}: '{module}' is not a linear layer of the base model (whose modules are named like '{names.Example}'): the adapter was made for another base");
            if (!config.Targets(module))
                throw new CheckpointFormatException($"{path}: '{module}' holds LoRA matrices but is not among target_modules in {ConfigFile}");
            var e = file[name];
            if (e.DType is not ("F32" or "BF16" or "F16")) throw new CheckpointFormatException($"{path}: '{name}' is {e.DType}; LoRA matrices are read as F32, BF16 or F16");
            int[] want = isA ? [rank, layer.InFeatures] : [layer.OutFeatures, rank];
            if (!e.Shape.SequenceEqual(want))
                throw new CheckpointFormatException($"{path}: '{name}' is ({string.Join(", ", e.Shape)}), but the base's layer {layer.Scope} ({layer.OutFeatures} × {layer.InFeatures}) at rank r = {rank} needs ({string.Join(", ", want)})");
            seen.TryGetValue(layer.Scope, out var both);
            seen[layer.Scope] = isA ? (true, both.B) : (both.A, true);
            tensors.Add(new TensorPlan(name, layer.Scope, isA));
        }
        if (tensors.Count == 0) throw new CheckpointFormatException($"{path}: holds no LoRA matrices");
        foreach (var (scope, both) in seen)
            if (!both.A || !both.B) throw new CheckpointFormatException($"{path}: layer '{names.Primary(scope)}' has lora_{(both.A ? "A" : "B")} but no lora_{(both.A ? "B" : "A")}");
        var missing = names.All.Where(x => config.Targets(x.Module) && !seen.ContainsKey(x.Layer.Scope)).Select(x => x.Module).Distinct().ToList();
        if (missing.Count > 0)
            throw new CheckpointFormatException($"{dir}: target_modules select {missing.Count} layers of the base that the adapter has no matrices for (e.g. '{missing[0]}'): the adapter was made for another base (more layers or other targets)");
        var targets = seen.Keys.Aggregate(LoraTargets.None, (t, scope) => t | LoraOptions.TargetOf(scope[(scope.LastIndexOf('.') + 1)..]));
        return new Plan(path, config, tensors, targets == LoraTargets.None ? LoraTargets.All : targets);
    }

    static void Copy(Plan plan, LoraAdapter adapter)
    {
        using var file = SafetensorsFile.Open(plan.Path);
        foreach (var t in plan.Tensors)
        {
            using var stored = file.Read(t.Name);
            using var f32 = stored.DType == DType.F32 ? stored.Clone() : stored.To(DType.F32);
            var values = f32.AsReadOnlySpan<float>();
            foreach (var v in values)
                if (!float.IsFinite(v)) throw new CheckpointFormatException($"{plan.Path}: '{t.Name}' holds a non-finite value");
            values.CopyTo(adapter.Parameters[t.IsA ? LoraAdapter.AName(t.Scope) : LoraAdapter.BName(t.Scope)].Value.AsSpan<float>());
        }
    }

    /// <summary>The PEFT module names of a model's linear layers under one model_type.</summary>
    sealed class ModuleNames
    {
        readonly Dictionary<string, LinearModule> _byModule = new(StringComparer.Ordinal);
        readonly Dictionary<string, string> _primary = new(StringComparer.Ordinal);
        readonly List<(string Module, LinearModule Layer)> _all = [];

        public static ModuleNames Of(LanguageModel model, IArchitecture arch)
        {
            var n = new ModuleNames();
            foreach (var layer in model.Parameters.Linears)
            {
                IReadOnlyList<string> tensorNames;
                try
                {
                    tensorNames = arch.TensorNames(layer.Scope + ".weight", model.Config);
                }
                catch (ArgumentException)
                {
                    continue;   // a layer this model_type does not store
                }
                foreach (var t in tensorNames.Where(t => t.EndsWith(".weight", StringComparison.Ordinal)))
                {
                    var module = t[..^".weight".Length];
                    n._byModule.TryAdd(module, layer);
                    n._primary.TryAdd(layer.Scope, module);
                }
                if (n._primary.TryGetValue(layer.Scope, out var p)) n._all.Add((p, layer));
            }
            return n;
        }

        /// <summary>The layer a module name (any of the names the checkpoint may use) is, or null.</summary>
        public LinearModule? Layer(string module) => _byModule.GetValueOrDefault(module);

        /// <summary>The module name written for the layer at <paramref name="scope"/>, or null.</summary>
        public string? Primary(string scope) => _primary.GetValueOrDefault(scope);

        /// <summary>Every layer with its written module name.</summary>
        public IReadOnlyList<(string Module, LinearModule Layer)> All => _all;

        public string Example => _all.Count > 0 ? _all[0].Module : "(none)";

        /// <summary>
        /// target_modules for an adapter on <paramref name="modules"/>: their last names (q, v_proj, …) when those
        /// select exactly these modules under PEFT's suffix match, else the full module names.
        /// </summary>
        public IReadOnlyList<string> TargetModules(IReadOnlyList<string> modules)
        {
            var set = modules.ToHashSet(StringComparer.Ordinal);
            var leaves = modules.Select(m => m[(m.LastIndexOf('.') + 1)..]).Distinct().Order(StringComparer.Ordinal).ToList();
            bool exact = _all.All(x => set.Contains(x.Module) == leaves.Any(l => x.Module == l || x.Module.EndsWith("." + l, StringComparison.Ordinal)));
            return exact ? leaves : [.. modules];
        }
    }
}
