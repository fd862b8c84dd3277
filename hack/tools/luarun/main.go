// Command luarun runs an Argo CD resource customisation script (health.lua, discovery.lua
// or an action.lua) the way Argo CD's util/lua VM does: gopher-lua with only the package,
// base and table libraries and a safe os (time, date) open, the object as the global `obj`, a one-second deadline,
// and the returned table encoded by gopher-json. The object comes as JSON on stdin; the
// script's result goes to stdout as JSON.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

func decodeValue(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case map[string]interface{}:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetString(key, decodeValue(l, item))
		}
		return table
	case []interface{}:
		table := l.CreateTable(len(v), 0)
		for i, item := range v {
			table.RawSetInt(i+1, decodeValue(l, item))
		}
		return table
	}
	panic(fmt.Sprintf("unexpected JSON value %T", value))
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: luarun SCRIPT.lua < object.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var obj interface{}
	if err := json.Unmarshal(raw, &obj); err != nil {
		fmt.Fprintln(os.Stderr, "object:", err)
		os.Exit(2)
	}
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			panic(err)
		}
	}
	// Argo CD's "safe" os library: only time and date (util/lua/oslib_safe.go).
	if err := l.CallByParam(lua.P{Fn: l.NewFunction(lua.OpenOs), NRet: 1, Protect: true}, lua.LString(lua.OsLibName)); err != nil {
		panic(err)
	}
	safeOs := l.CreateTable(0, 2)
	osLib := l.GetGlobal(lua.OsLibName).(*lua.LTable)
	safeOs.RawSetString("time", osLib.RawGetString("time"))
	safeOs.RawSetString("date", osLib.RawGetString("date"))
	l.SetGlobal(lua.OsLibName, safeOs)
	l.Pop(l.GetTop())
	luajson.Preload(l)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(string(script)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	result := l.Get(-1)
	if result.Type() != lua.LTTable {
		fmt.Fprintf(os.Stderr, "expected a table from the script, not %s\n", result.Type())
		os.Exit(1)
	}
	encoded, err := luajson.Encode(result)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(string(encoded))
}
