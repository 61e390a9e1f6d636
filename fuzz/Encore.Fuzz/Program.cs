// encore-fuzz: runs one fuzz target under AFL++ (the default, SharpFuzz's out-of-process protocol) or
// libFuzzer (--libfuzzer, with SharpFuzz's libfuzzer-dotnet driver), or replays inputs directly.
// See fuzz/README.md for the commands.
using Encore.Fuzz;
using SharpFuzz;

if (args.Length == 0 || args[0] is "-h" or "--help" or "list")
{
    Console.WriteLine("usage: Encore.Fuzz <target> [--libfuzzer] | Encore.Fuzz replay <target> <file or folder>...");
    foreach (var t in Targets.All) Console.WriteLine($"  {t.Name,-18} {t.Description}");
    return 0;
}

if (args[0] == "replay")
{
    if (args.Length < 3) throw new ArgumentException("replay needs a target and at least one file or folder");
    var target = Targets.Get(args[1]);
    int count = 0;
    foreach (var path in args[2..].SelectMany<string, string>(p => Directory.Exists(p) ? Directory.GetFiles(p, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal) : [p]))
    {
        Targets.Execute(target, File.ReadAllBytes(path));
        count++;
    }
    Console.WriteLine($"{target.Name}: {count} inputs replayed, none escaped");
    return 0;
}

var fuzzTarget = Targets.Get(args[0]);
if (args.Contains("--libfuzzer"))
{
    Fuzzer.LibFuzzer.Run(span => Targets.Execute(fuzzTarget, span.ToArray()));
}
else
{
    Fuzzer.OutOfProcess.Run(stream =>
    {
        using var ms = new MemoryStream();
        stream.CopyTo(ms);
        Targets.Execute(fuzzTarget, ms.ToArray());
    });
}
return 0;
