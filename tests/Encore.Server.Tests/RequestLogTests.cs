using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Encore.Server.Tests;

/// <summary>One structured log line per completion request: id, path, model, status, tokens in and out, time to first token, total time.</summary>
public class RequestLogTests
{
    sealed class Capture : ILoggerProvider
    {
        public readonly ConcurrentQueue<(string Category, string Message)> Lines = new();
        public ILogger CreateLogger(string categoryName) => new Sink(this, categoryName);
        public void Dispose() { }

        sealed class Sink(Capture owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel l, EventId e, TState s, Exception? x, Func<TState, Exception?, string> f) => owner.Lines.Enqueue((category, f(s, x)));
        }
    }

    [Fact]
    public async Task EachCompletionRequestWritesOneLineWithItsFigures()
    {
        await using var s = await TinyServer.StartAsync();
        var capture = new Capture();
        await using var server = await EncoreServer.StartAsync(s.Model, s.Tokenizer, new ServerOptions { Port = 0, ModelName = "logged" },
            logging => logging.AddProvider(capture).AddFilter(EncoreServer.RequestLogCategory, LogLevel.Information));
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        using var ok = await http.PostAsync("v1/completions", new StringContent("""{"prompt": "hello there", "max_tokens": 3}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        using var bad = await http.PostAsync("v1/completions", new StringContent("""{"model": "nope", "prompt": "hi"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var lines = capture.Lines.Where(l => l.Category == EncoreServer.RequestLogCategory).Select(l => l.Message).ToList();
        Assert.Equal(2, lines.Count);
        Assert.Matches(@"^request cmpl-\w+ /v1/completions model=logged status=200 prompt_tokens=[1-9]\d* completion_tokens=\d+ first_token_s=\d+\.\d{3} total_s=\d+\.\d{3}$", lines[0]);
        Assert.Matches(@"status=400 prompt_tokens=0 completion_tokens=0 first_token_s=- total_s=", lines[1]);
    }
}
