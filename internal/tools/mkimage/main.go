// Command mkimage builds cairnd's container image as an OCI image layout and pushes it,
// without a Docker engine (internal/imagebuild; README "Container image").
//
//	mkimage build [-o bin/image] [-platform linux/amd64,linux/arm64] [-ca-certificates FILE] [-source URL]
//	mkimage push [-layout bin/image] [-insecure] REGISTRY/REPOSITORY[:TAG]
//
// push authenticates with the user's docker configuration (what `crane auth login`,
// `oras login` or `docker login` saved) and pushes the SBOMs as referrers of the images.
// It lives apart from cmd/cairnd so that go-containerregistry stays out of the server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cairn-dev/cairn/internal/imagebuild"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: mkimage build [-o DIR] [-platform P,...] [-ca-certificates FILE] [-source URL] | mkimage push [-layout DIR] [-insecure] REGISTRY/REPOSITORY[:TAG]")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	switch args[0] {
	case "build":
		fs := flag.NewFlagSet("mkimage build", flag.ContinueOnError)
		fs.SetOutput(stderr)
		out := fs.String("o", "bin/image", "the OCI image layout directory to write (an existing layout there is replaced)")
		plats := fs.String("platform", "linux/amd64,linux/arm64", "platforms, comma-separated")
		ca := fs.String("ca-certificates", imagebuild.CABundlePath, "PEM bundle of CA certificates to put in the image")
		source := fs.String("source", "", "org.opencontainers.image.source (default https://<module path>)")
		if err := fs.Parse(args[1:]); err != nil {
			return errUsage
		}
		if fs.NArg() != 0 {
			return fmt.Errorf("mkimage build takes no arguments, got %q: %w", fs.Args(), errUsage)
		}
		var ps []imagebuild.Platform
		for _, s := range strings.Split(*plats, ",") {
			p, err := imagebuild.ParsePlatform(strings.TrimSpace(s))
			if err != nil {
				return err
			}
			ps = append(ps, p)
		}
		res, err := imagebuild.Build(ctx, imagebuild.Options{Out: *out, Platforms: ps, CACertificates: *ca, Source: *source, Log: log})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: OCI image layout, tag %s\n  index %s (%d bytes)\n", *out, res.Tag, res.Index.Digest, res.Index.Size)
		for _, im := range res.Images {
			fmt.Fprintf(stdout, "  %-12s %s  sbom %s\n", im.Platform, im.Manifest.Digest, im.SBOM.Digest)
		}
		fmt.Fprintf(stdout, "  version %s, revision %s, created %s\n", res.Version, res.Revision, res.Created.Format("2006-01-02T15:04:05Z07:00"))
		return nil
	case "push":
		fs := flag.NewFlagSet("mkimage push", flag.ContinueOnError)
		fs.SetOutput(stderr)
		dir := fs.String("layout", "bin/image", "the OCI image layout that mkimage build wrote")
		insecure := fs.Bool("insecure", false, "allow plain HTTP (loopback and private addresses use it anyway)")
		if err := fs.Parse(args[1:]); err != nil {
			return errUsage
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("mkimage push needs one REGISTRY/REPOSITORY[:TAG]: %w", errUsage)
		}
		l, err := imagebuild.OpenLayout(*dir)
		if err != nil {
			return err
		}
		var nopts []name.Option
		if *insecure {
			nopts = append(nopts, name.Insecure)
		}
		// A tag only if one was given: name.ParseReference would add "latest".
		target, tag := fs.Arg(0), ""
		if i := strings.LastIndex(target, ":"); i > strings.LastIndex(target, "/") {
			target, tag = target[:i], target[i+1:]
		}
		if strings.Contains(target, "@") {
			return fmt.Errorf("push target %q: give a repository and optionally a tag, not a digest", fs.Arg(0))
		}
		repo, err := name.NewRepository(target, nopts...)
		if err != nil {
			return fmt.Errorf("push target %q: %w", fs.Arg(0), err)
		}
		if tag != "" {
			if _, err := name.NewTag(repo.Name()+":"+tag, nopts...); err != nil {
				return fmt.Errorf("push target %q: %w", fs.Arg(0), err)
			}
		}
		d, err := l.Push(ctx, repo, tag, remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", d)
		for _, s := range l.SBOMs {
			fmt.Fprintf(stdout, "  sbom %s (%s)\n", s.Digest, s.Annotations["vnd.cairn.sbom.platform"])
		}
		return nil
	}
	return errUsage
}
