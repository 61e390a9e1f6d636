namespace Encore.Fuzz.Tests;

/// <summary>
/// Replays every committed seed and finding under fuzz/corpus/ through its fuzz target, so a parser
/// regression shows in the ordinary test run without a fuzzer: no input may escape as anything but
/// the parser's documented refusal, allocate past the bound, or take more than a few seconds.
/// </summary>
public class CorpusReplayTests
{
    static string CorpusDir(string target) => Path.Combine(AppContext.BaseDirectory, "corpus", target);

    public static TheoryData<string> TargetNames => new(Targets.All.Select(t => t.Name));

    [Theory]
    [MemberData(nameof(TargetNames))]
    public async Task CorpusReplaysWithoutFindings(string name)
    {
        var target = Targets.Get(name);
        var files = Directory.GetFiles(CorpusDir(name), "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            var input = File.ReadAllBytes(file);
            var run = Task.Factory.StartNew(() => Targets.Execute(target, input), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            try
            {
                await run.WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (TimeoutException)
            {
                Assert.Fail($"{file}: no result within 30 s (a hang)");
            }
            catch (Exception e)
            {
                Assert.Fail($"{file}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
        }
    }

    [Fact]
    public void EveryTargetHasASeedCorpus()
    {
        foreach (var t in Targets.All) Assert.True(Directory.Exists(CorpusDir(t.Name)), $"no fuzz/corpus/{t.Name}/");
        Assert.Equal(Targets.All.Count, Directory.GetDirectories(Path.Combine(AppContext.BaseDirectory, "corpus")).Length);
    }

    [Fact]
    public void AnUnexpectedExceptionEscapesTheTarget()
    {
        // The harness itself must not swallow findings: a request parser bug would surface as, e.g., an InvalidOperationException.
        var probe = new FuzzTarget("probe", "throws", _ => throw new InvalidOperationException("finding"));
        Assert.Throws<InvalidOperationException>(() => Targets.Execute(probe, []));
    }
}
